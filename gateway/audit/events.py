"""Audit events: their fields, their canonical JSON and the hash that chains them (contract §7)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from gateway.ids import random_uuid
from gateway.types import EventType, format_ts

GENESIS_HASH = "0" * 64

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

Event = dict[str, Any]


def now_iso() -> str:
    """The current UTC time as the audit log writes it (microseconds, `Z`)."""
    return format_ts(datetime.now(UTC))


def new_event(event_type: EventType, **fields: Any) -> Event:
    """A fresh, unchained event: every contract field present, seq and hashes still unset."""
    unknown = set(fields) - set(FIELDS) - {DETAIL_FIELD}
    if unknown:
        raise ValueError(f"unknown audit fields: {sorted(unknown)}")
    event: Event = dict.fromkeys(FIELDS)
    event.update(event_id=str(random_uuid()), ts=now_iso(), type=str(event_type))
    event.update(fields)
    if event.get("roles") is not None:
        event["roles"] = sorted(event["roles"])
    return event


def canonical_json(event: Event) -> str:
    """Sorted keys, no spaces, ASCII only: one event has exactly one byte string."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def body_of(event: Event) -> Event:
    """The event without its own hash: what the hash covers."""
    return {k: v for k, v in event.items() if k != "hash"}


def chain_hash(prev_hash: str, body: Event) -> str:
    """sha256(prev_hash + canonical JSON of the event without hash), as hex."""
    return _hash(prev_hash, canonical_json(body))


def _hash(prev_hash: str, body_json: str) -> str:
    return hashlib.sha256((prev_hash + body_json).encode("ascii")).hexdigest()


def seal(event: Event, seq: int, prev_hash: str) -> Event:
    """Give an event its place in the chain: seq, prev_hash and hash."""
    return seal_with_body(event, seq, prev_hash)[0]


def seal_with_body(event: Event, seq: int, prev_hash: str) -> tuple[Event, str]:
    """seal(), and the canonical JSON its hash covers: what the store keeps, made once."""
    sealed = dict(event, seq=seq, prev_hash=prev_hash)
    sealed.pop("hash", None)
    body_json = canonical_json(sealed)
    sealed["hash"] = _hash(prev_hash, body_json)
    return sealed, body_json
