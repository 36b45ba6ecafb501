"""Playback sessions over real HTTP (contract §12): start, watch, refuse, end, list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from gateway.playback.tokens import token_hash
from gateway.types import Zone
from tests.support.server import wait_for

CLIP = "20261127T101500Z.mp4"
DATA = bytes(range(256)) * 400  # 102400 bytes
STAFF = {"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-7 replay"}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def home(live):
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, DATA)
    return live


def alice(live, **headers):
    return live.env.auth("alice", "customer", customer_id="c1", **headers)


def sam(live, **headers):
    return live.env.auth("sam", "support_agent", **{**STAFF, **headers})


def grant(live, **changes):
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": iso(datetime.now(UTC) + timedelta(hours=2)),
        "ticket": "TICKET-7",
        "include_private": False,
        **changes,
    }
    r = live.client.post("/v1/grants", json=body, headers=alice(live))
    assert r.status_code == 201, r.text
    return r.json()


def start(live, headers, clip=CLIP):
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": clip}
    return live.client.post("/v1/playback", json=body, headers=headers)


def test_owner_starts_and_watches_ranges(home):
    r = start(home, alice(home))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["grant"] is None and body["idle_timeout_seconds"] == 600
    url = body["url"]
    assert url.startswith("/v1/play/") and len(url.rsplit("/", 1)[1]) == 43
    whole = home.client.get(url)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["referrer-policy"] == "no-referrer"
    assert whole.headers["cache-control"] == "private, no-store"
    part = home.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == DATA[100:200]
    head = home.client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA))


def test_staff_under_a_grant(home):
    g = grant(home)
    r = start(home, sam(home))
    assert r.status_code == 201, r.text
    assert r.json()["grant"]["grant_id"] == g["grant_id"]
    assert home.client.get(r.json()["url"]).content == DATA


def test_staff_without_a_grant_is_refused_and_audited(home):
    r = start(home, sam(home))
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_grant"
    assert r.headers["x-audit-event-id"]


def recorded(live, headers, requests):
    """Wait until the session's requests are written (a moment after each answer: the stream
    reports how it ended once its last byte is sent, and the recorder is never awaited)."""

    def done():
        sessions = live.client.get("/v1/playback", headers=headers).json()["sessions"]
        return sessions and sessions[0]["requests"] == requests

    wait_for(done)


def events(live, **filters):
    analyst = live.env.auth("ana", "security_analyst")
    r = live.client.get("/v1/audit/events", params={"limit": 1000, **filters}, headers=analyst)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def ended_events(live):
    return [e for e in events(live) if e["type"] == "playback.ended"]


def test_a_guessed_or_malformed_token_is_refused_and_audited(home):
    guessed = "A" * 43
    for token in (guessed, "short", "x" * 200):
        r = home.client.get(f"/v1/play/{token}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "playback_not_found"
        assert r.headers["referrer-policy"] == "no-referrer"
        [event] = [e for e in events(home) if e["event_id"] == r.headers["x-audit-event-id"]]
        assert event["decision"] == "deny" and event["action"] == "play"
        assert event["principal"] is None and event["reason"] == "playback_not_found"


def test_an_expired_token_is_refused_with_the_clock_moved(home):
    r = start(home, alice(home))
    url = r.json()["url"]
    assert home.client.get(url, headers={"Range": "bytes=0-9"}).status_code == 206
    recorded(home, alice(home), 1)
    playback = home.services.playback
    playback.clock = lambda: datetime.now(UTC) + timedelta(hours=2, seconds=1)
    try:
        refused = home.client.get(url)
    finally:
        playback.clock = lambda: datetime.now(UTC)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "playback_ended"
    [ended] = ended_events(home)
    assert ended["reason"] == "max_age" and ended["detail"]["requests"] == 1
    assert ended["bytes_sent"] == 10 and ended["detail"]["coverage"] == round(10 / len(DATA), 6)
    assert home.client.get(url).status_code == 403  # still refused, no second summary
    assert len(ended_events(home)) == 1


def test_an_idle_session_is_swept_once(home):
    url = start(home, alice(home)).json()["url"]
    assert home.client.get(url).status_code == 200
    recorded(home, alice(home), 1)
    playback = home.services.playback
    playback.clock = lambda: datetime.now(UTC) + timedelta(seconds=601)
    try:
        assert playback.reaper is not None
        assert home.server.run_on_loop(playback.reaper.sweep()) == 1
        assert home.server.run_on_loop(playback.reaper.sweep()) == 0
    finally:
        playback.clock = lambda: datetime.now(UTC)
    [ended] = ended_events(home)
    assert ended["reason"] == "idle" and ended["detail"]["coverage"] == 1.0
    assert ended["bytes_sent"] == len(DATA)
    assert home.client.get(url).status_code == 403


def test_ended_by_the_principal_and_by_the_customer(home):
    grant(home)
    mine = start(home, sam(home)).json()
    theirs = start(home, sam(home)).json()
    assert {
        s["session_id"]
        for s in home.client.get("/v1/playback", headers=alice(home)).json()["sessions"]
    } == {
        mine["session_id"],
        theirs["session_id"],
    }
    other = home.env.auth("bob", "customer", customer_id="c2")
    assert (
        home.client.delete(f"/v1/playback/{mine['session_id']}", headers=other).status_code == 403
    )
    assert home.client.delete("/v1/playback/pb_nothing", headers=other).status_code == 403
    r = home.client.delete(f"/v1/playback/{mine['session_id']}", headers=sam(home))
    assert r.status_code == 204 and r.headers["x-audit-event-id"]
    r = home.client.delete(f"/v1/playback/{theirs['session_id']}", headers=alice(home))
    assert r.status_code == 204
    again = home.client.delete(f"/v1/playback/{theirs['session_id']}", headers=alice(home))
    assert again.status_code == 404 and again.json()["error"]["code"] == "playback_ended"
    reasons = sorted(e["reason"] for e in ended_events(home))
    assert reasons == ["ended", "ended_by_customer"]
    for body in (mine, theirs):
        assert home.client.get(body["url"]).json()["error"]["code"] == "playback_ended"
    assert home.client.get("/v1/playback", headers=sam(home)).json()["sessions"] == []


def test_revocation_ends_playback_at_the_next_request(home):
    g = grant(home)
    url = start(home, sam(home)).json()["url"]
    assert home.client.get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    assert home.client.delete(f"/v1/grants/{g['grant_id']}", headers=alice(home)).status_code == 200
    wait_for(lambda: home.client.get(url).status_code == 403, timeout=1.5)
    [ended] = ended_events(home)
    assert ended["reason"] == "revoked" and ended["grant_id"] == g["grant_id"]


def test_suspension_ends_playback_at_the_next_request(home):
    grant(home)
    url = start(home, sam(home)).json()["url"]
    assert home.client.get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    analyst = home.env.auth("ana", "security_analyst")
    r = home.client.post("/v1/principals/sam/suspend", json={"reason": "test"}, headers=analyst)
    assert r.status_code == 200, r.text
    wait_for(lambda: home.client.get(url).status_code == 403, timeout=1.5)
    [ended] = ended_events(home)
    assert ended["reason"] == "suspended"


def test_the_token_is_not_a_bearer_token_for_any_clip(home):
    home.env.put_clip("c1", "front", "20261127T111500Z.mp4", b"other clip")
    token = start(home, alice(home)).json()["url"].rsplit("/", 1)[1]
    r = home.client.get(
        "/v1/footage/c1/front/20261127T111500Z.mp4", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 401 and r.headers["x-audit-event-id"]


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """Every structlog entry, with the request's bound context merged in."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


def test_the_token_is_in_no_log_line_and_no_audit_event(home):
    grant(home)
    with captured() as logs:
        tokens = _play_every_way(home)
    lines = json.dumps(logs, default=str)
    assert "audit_event" in lines  # the log was captured at all
    everything = json.dumps(events(home))
    for token in tokens:
        assert token not in everything and token not in lines
        assert token_hash(token) not in everything and token_hash(token) not in lines


def _play_every_way(home):
    tokens = []
    for headers in (alice(home), sam(home)):
        body = start(home, headers).json()
        tokens.append(body["url"].rsplit("/", 1)[1])
        home.client.get(body["url"], headers={"Range": "bytes=5-"})
        home.client.head(body["url"])
        home.client.get(body["url"], headers={"Range": "bytes=999999-"})  # 416
        home.client.delete(f"/v1/playback/{body['session_id']}", headers=headers)
        refused = home.client.get(body["url"])
        assert refused.status_code == 403
        assert tokens[-1] not in refused.text
    home.client.get(
        "/v1/footage/c1/front/" + CLIP, headers={"Authorization": f"Bearer {tokens[0]}"}
    )
    home.client.get("/v1/play/" + tokens[0][:-1] + "A")  # a near miss: 404
    wait_for(lambda: len(ended_events(home)) == 2)
    return tokens


def test_the_access_log_shows_one_entry_per_playback(home):
    url = start(home, alice(home)).json()["url"]
    for start_byte in range(0, 50000, 10000):
        r = home.client.get(url, headers={"Range": f"bytes={start_byte}-{start_byte + 9999}"})
        assert r.status_code == 206

    def entry():
        found = home.client.get("/v1/me/access-log", headers=alice(home)).json()["events"]
        playing = [e for e in found if e.get("playback")]
        return playing if playing and playing[0]["playback"]["requests"] == 5 else None

    [row] = wait_for(entry)
    assert row["action"] == "playback" and row["status"] == 201
    figures = row["playback"]
    assert figures["live"] is True and figures["bytes_sent"] == 50000
    assert figures["first_request_at"] <= figures["last_request_at"]
    assert figures["coverage"] == round(50000 / len(DATA), 6)
    found = home.client.get("/v1/me/access-log", headers=alice(home)).json()["events"]
    assert len(found) == 1  # the range requests are not views of their own


def test_detection_counts_a_playback_once(home):
    grant(home)
    url = start(home, sam(home)).json()["url"]
    for _ in range(20):
        assert home.client.get(url, headers={"Range": "bytes=0-999"}).status_code == 206
    analyst = home.env.auth("ana", "security_analyst")
    activity = home.client.get("/v1/principals/sam", headers=analyst).json()["activity"]
    assert activity["views_last_hour"] == 1
