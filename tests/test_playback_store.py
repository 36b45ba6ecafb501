"""The pure parts of playback: coverage, tokens, and when a session stops being live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.playback.standing import end_reason
from gateway.playback.store import ENDED, Session, Standing, coverage
from gateway.playback.tokens import new_token, token_hash, well_formed

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def test_coverage_is_the_union_of_the_spans_over_the_size():
    assert coverage(100, []) == 0.0
    assert coverage(100, [(0, 99)]) == 1.0
    assert coverage(100, [(0, 9), (5, 14), (50, 59)]) == 0.25
    assert coverage(100, [(90, 150), (-5, 4)]) == 0.15  # clipped to the clip
    assert coverage(100, [(10, 19), (10, 19), (12, 15)]) == 0.1  # repeats count once
    assert coverage(0, [(0, 0)]) == 0.0


def test_tokens_are_long_random_and_kept_only_as_a_hash():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(well_formed(t) and len(t) == 43 for t in tokens)
    token = tokens.pop()
    assert len(token_hash(token)) == 64 and token not in token_hash(token)
    assert not well_formed(token + "x") and not well_formed("../" + token[3:])


def standing(**changes) -> Standing:
    session = Session(
        session_id="pb_x",
        token_hash="0" * 64,
        request_id="r",
        principal="sam",
        roles=("support_agent",),
        customer_id="c1",
        camera_id="front",
        clip_id="20261127T101500Z.mp4",
        purpose="customer_support",
        justification="TICKET-7",
        grant_id=changes.pop("grant_id", "gr_1"),
        clip_size=100,
        started_at=NOW,
        expires_at=NOW + timedelta(hours=2),
        state=changes.pop("state", "live"),
        ended_reason=changes.pop("ended_reason", None),
    )
    facts = {
        "grant_revoked": False,
        "grant_expires_at": NOW + timedelta(hours=1),
        "suspended": False,
    }
    return Standing(session=session, **{**facts, **changes})


def test_end_reasons_in_the_order_they_are_asked():
    assert end_reason(standing(), NOW, 600) is None
    assert end_reason(standing(state=ENDED, ended_reason="idle"), NOW, 600) == "idle"
    assert end_reason(standing(suspended=True, grant_revoked=True), NOW, 600) == "suspended"
    assert end_reason(standing(grant_revoked=True), NOW, 600) == "revoked"
    assert end_reason(standing(grant_expires_at=None), NOW, 600) == "grant_expired"
    later = NOW + timedelta(hours=1)
    assert end_reason(standing(), later, 600) == "grant_expired"
    assert end_reason(standing(grant_id=None), later, 600) == "idle"
    seen = later - timedelta(seconds=10)
    assert end_reason(standing(grant_id=None), later, 600, last_seen=seen) is None
    assert end_reason(standing(grant_id=None), NOW + timedelta(hours=2), 10**6) == "max_age"
