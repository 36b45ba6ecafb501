"""Pure evaluation of HTTP conditional request headers on a clip (RFC 9110 §13).

The order is §13.2.2's: `If-Match` first (412 when it fails), then `If-None-Match` (304 for a
GET or HEAD whose validator the client already holds), then `If-Range`, which only decides
whether a `Range` is honoured: a stale validator gets the whole clip, 200, never a piece of a
clip that has changed underneath the client. `If-Modified-Since` and `If-Unmodified-Since` are
not evaluated (contract §5).

Like ranges.py, hostile input is bounded: each header is length-checked first, then split on
commas only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum

from gateway.errors import PreconditionFailed

MAX_HEADER_LENGTH = 4096
_WEAK = "W/"


class Condition(Enum):
    """What the conditional headers make of a request that may otherwise be served."""

    SERVE = "serve"
    NOT_MODIFIED = "not_modified"  # 304


def evaluate(if_match: str | None, if_none_match: str | None, etag: str) -> Condition:
    """SERVE or NOT_MODIFIED for a GET or HEAD of a clip with `etag`; PreconditionFailed (412)."""
    if if_match is not None and not _any_matches(if_match, etag, weak=False):
        raise PreconditionFailed("The clip does not match If-Match.")
    if if_none_match is not None and _any_matches(if_none_match, etag, weak=True):
        return Condition.NOT_MODIFIED
    return Condition.SERVE


def range_applies(if_range: str | None, etag: str, last_modified: datetime) -> bool:
    """Whether a Range may be honoured: no If-Range, or one naming the clip as it is now.

    §13.1.5: an entity-tag must match strongly (a weak one never does); a date must equal the
    clip's Last-Modified exactly. Anything else, malformed included, means the whole clip.
    """
    if if_range is None:
        return True
    value = if_range.strip(" \t")
    if len(value) > MAX_HEADER_LENGTH:
        return False
    if value.startswith(('"', _WEAK)):
        return value == etag and not etag.startswith(_WEAK)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if moment.tzinfo is None:
        return False
    return moment == last_modified.astimezone(UTC).replace(microsecond=0)


def _any_matches(header: str, etag: str, *, weak: bool) -> bool:
    """Whether the `*` or entity-tag list in `header` names `etag` (§8.8.3.2 comparisons)."""
    if len(header) > MAX_HEADER_LENGTH:
        return False
    tags = [tag.strip(" \t") for tag in header.split(",")]
    if "*" in tags:
        return True
    if not weak and etag.startswith(_WEAK):
        return False
    ours = etag.removeprefix(_WEAK)
    for tag in tags:
        if tag.startswith(_WEAK):
            if weak and tag.removeprefix(_WEAK) == ours:
                return True
        elif tag == ours:
            return True
    return False
