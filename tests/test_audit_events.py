"""Audit events: the canonical JSON every hash covers, and the fields a new event gets."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.chain import GENESIS_HASH
from gateway.audit.events import (
    canonical_json,
    chain_hash,
    new_event,
    seal_with_body,
)
from gateway.types import EventType, now_ts, parse_ts

# An event sealed by the gateway before the canonical encoder was built once: its
# hash must never change, or `audit verify` would fail every log written until then.
KNOWN_EVENT: dict[str, Any] = {
    "seq": None,
    "event_id": "00000000-0000-4000-8000-000000000001",
    "ts": "2026-11-28T12:00:00.000001Z",
    "type": "access.decision",
    "request_id": "r1",
    "principal": "sam",
    "roles": ["support_agent"],
    "purpose": "customer_support",
    "justification": 'SUP-1 caf\u00e9 \u2028 "quoted"\n',
    "action": "view",
    "customer_id": "c1",
    "camera_id": "front",
    "clip_id": "20261127T101500Z.mp4",
    "decision": "allow",
    "reason": "grant",
    "grant_id": "gr_1",
    "status": 206,
    "range": "bytes=0-9",
    "bytes_sent": None,
    "client_ip": "127.0.0.1",
    "user_agent": "curl/8 \U0001f600",
    "prev_hash": None,
    "hash": None,
    "detail": {"zone": "indoor", "weights": [1.5, 2, True, None], "nested": {"b": 1, "a": 2}},
}
KNOWN_HASH = "29a359691b9613019a3c376f3208c851510057a4317e928293962a92d06ff2b6"


def reference(value: Any) -> str:
    """The contract's canonical JSON, spelled out with the json module's own options."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(),  # any code point: escapes, surrogates' pairs, line separators
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_canonical_json_is_json_dumps_sorted_compact_ascii(event: dict[str, Any]) -> None:
    assert canonical_json(event) == reference(event)


def test_a_known_event_keeps_its_body_and_hash() -> None:
    sealed, body = seal_with_body(KNOWN_EVENT, 7, GENESIS_HASH)
    assert sealed["hash"] == KNOWN_HASH
    assert body == reference({k: v for k, v in sealed.items() if k != "hash"})
    assert chain_hash(GENESIS_HASH, {k: v for k, v in sealed.items() if k != "hash"}) == KNOWN_HASH


@pytest.mark.parametrize("value", [{1, 2}, object(), b"bytes"])
def test_canonical_json_refuses_what_json_refuses(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json({"detail": value})


def test_event_times_are_the_stored_timestamp_format() -> None:
    before = datetime.now(UTC)
    stamp = now_ts()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert (
        before - timedelta(milliseconds=1) <= parse_ts(stamp) <= after + timedelta(milliseconds=1)
    )


def test_a_new_event_has_every_field_and_refuses_unknown_ones() -> None:
    event = new_event(EventType.ACCESS_DECISION, roles=["b", "a"], detail={"zone": "indoor"})
    assert event["type"] == "access.decision" and event["roles"] == ["a", "b"]
    assert event["seq"] is None and event["hash"] is None and len(event["event_id"]) == 36
    with pytest.raises(ValueError, match="unknown audit fields"):
        new_event(EventType.ACCESS_DECISION, principal="sam", color="red")


def test_an_event_without_detail_still_carries_the_field_as_null() -> None:
    # Contract §7: every event has one canonical shape, `detail` included (grant.revoked had none).
    event = new_event(EventType.GRANT_REVOKED, customer_id="c1", grant_id="gr_1")
    assert "detail" in event and event["detail"] is None
