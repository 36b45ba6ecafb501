"""Audit events: their fields, their canonical JSON and the hash that chains them (contract §7)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from gateway.ids import random_uuid_text
from gateway.types import EventType, now_ts

# The contract's fields, in the order a reader expects them. Every event carries all of them
# (null where they do not apply) so the canonical JSON, and so the hash, has one shape.
FIELDS = (
    "seq",
    "event_id",
    "ts",
    "type",
    "request_id",
    "principal",
    "roles",
    "purpose",
    "justification",
    "action",
    "customer_id",
    "camera_id",
    "clip_id",
    "decision",
    "reason",
    "grant_id",
    "status",
    "range",
    "bytes_sent",
    "client_ip",
    "user_agent",
    "prev_hash",
    "hash",
)
# Extra facts an event may carry beyond the contract's fields (a flag's rule, a zone, …).
DETAIL_FIELD = "detail"
_KNOWN = frozenset((*FIELDS, DETAIL_FIELD))
# Copied, never changed (a copy is cheaper than fromkeys()). `detail` is in it too: every event
# carries every field, null where it does not apply (contract §7, "Fields").
_BLANK = dict.fromkeys((*FIELDS, DETAIL_FIELD))

# json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True), the bytes every hash
# covers, encoded by one C encoder built once: json.dumps() builds an encoder object, a C encoder
# and a closure on every call, a real share of its cost for an event, on the writer's critical path
# (docs/benchmarks.md). No circular-reference bookkeeping (markers=None): events are JSON trees.
# Where the C accelerator is missing, the same options through the json module.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _c_encoder() -> Callable[[Any, int], Any] | None:
    try:
        from _json import make_encoder
    except ImportError:  # pragma: no cover - CPython always has it
        return None
    ascii_only = json.encoder.encode_basestring_ascii
    return make_encoder(None, _CANONICAL.default, ascii_only, None, ":", ",", True, False, True)


_canonical_chunks = _c_encoder()

Event = dict[str, Any]


def new_event(event_type: EventType, **fields: Any) -> Event:
    """A fresh, unchained event: every contract field present, seq and hashes still unset."""
    if not _KNOWN.issuperset(fields):
        raise ValueError(f"unknown audit fields: {sorted(set(fields) - _KNOWN)}")
    event: Event = _BLANK.copy()
    event.update(event_id=random_uuid_text(), ts=now_ts(), type=str(event_type))
    event.update(fields)
    if event.get("roles") is not None:
        event["roles"] = sorted(event["roles"])
    return event


def canonical_json(event: Event) -> str:
    """Sorted keys, no spaces, ASCII only: one event has exactly one byte string."""
    if _canonical_chunks is None:
        return _CANONICAL.encode(event)
    return "".join(_canonical_chunks(event, 0))


def body_of(event: Event) -> Event:
    """The event without its own hash: what the hash covers."""
    return {k: v for k, v in event.items() if k != "hash"}


def chain_hash(prev_hash: str, body: Event) -> str:
    """sha256(prev_hash + canonical JSON of the event without hash), as hex."""
    return _hash(prev_hash, canonical_json(body))


def _hash(prev_hash: str, body_json: str) -> str:
    return hashlib.sha256((prev_hash + body_json).encode("ascii")).hexdigest()


def seal_with_body(event: Event, seq: int, prev_hash: str) -> tuple[Event, str]:
    """The event given its place in the chain (seq, prev_hash, hash), and the canonical JSON its
    hash covers: what the store keeps, made once (batches: gateway/audit/chain.py)."""
    sealed = dict(event, seq=seq, prev_hash=prev_hash)
    sealed.pop("hash", None)
    body_json = canonical_json(sealed)
    sealed["hash"] = _hash(prev_hash, body_json)
    return sealed, body_json
