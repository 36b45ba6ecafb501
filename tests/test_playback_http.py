"""Playback over HTTP, the edges: conditionals through a playback URL, and a start refused
exactly as a GET of the clip is (every refusal audited)."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import create_db_engine
from gateway.types import Zone
from tests.support.server import make_env, start_live

CLIP = "20261127T101500Z.mp4"
DATA = bytes(range(256)) * 100


@pytest.fixture
def home(live):
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, DATA)
    return live


def alice(live):
    return live.env.auth("alice", "customer", customer_id="c1")


def start(live, headers, **changes):
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP, **changes}
    return live.client.post("/v1/playback", json=body, headers=headers)


def test_if_range_and_if_none_match_through_a_playback_url(home):
    url = start(home, alice(home)).json()["url"]
    etag = home.client.head(url).headers["etag"]
    same = home.client.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert same.status_code == 206 and same.content == DATA[10:20]
    other = home.client.get(url, headers={"Range": "bytes=10-19", "If-Range": '"other"'})
    assert other.status_code == 200 and other.content == DATA  # another version: the whole
    cached = home.client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["referrer-policy"] == "no-referrer"
    suffix = home.client.get(url, headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == DATA[-5:]
    outside = home.client.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert outside.status_code == 416


@pytest.mark.parametrize(
    ("headers", "changes", "status", "code"),
    [
        (None, {}, 401, "unauthenticated"),
        ("alice", {"clip_id": "not-a-clip"}, 400, "bad_request"),
        ("alice", {"clip_id": "20261127T111500Z.mp4"}, 404, "not_found"),
        ("alice", {"customer_id": "c2"}, 403, "not_owner"),
        ("alice", {"extra": "x"}, 400, "bad_request"),
        ("sam", {}, 403, "no_grant"),
        ("sam-no-purpose", {}, 403, "purpose_required"),
    ],
)
def test_a_start_is_refused_as_a_get_of_the_clip_and_audited(home, headers, changes, status, code):
    chosen = {
        None: {},
        "alice": alice(home),
        "sam": home.env.auth(
            "sam",
            "support_agent",
            **{"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-7"},
        ),
        "sam-no-purpose": home.env.auth("sam", "support_agent"),
    }[headers]
    r = start(home, chosen, **changes)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    event_id = r.headers["x-audit-event-id"]
    analyst = home.env.auth("ana", "security_analyst")
    found = home.client.get("/v1/audit/events", params={"limit": 100}, headers=analyst).json()
    [event] = [e for e in found["events"] if e["event_id"] == event_id]
    # As for a GET: a missing clip is an allowed decision answered 404 (detection's probe).
    assert event["decision"] == ("allow" if status == 404 else "deny")
    assert event["action"] == "playback"
    assert event["status"] == status
    assert home.client.get("/v1/playback", headers=alice(home)).json()["sessions"] == []


def test_an_open_stream_stops_when_its_session_is_ended(home):
    big = "20261127T121500Z.mp4"
    home.env.put_clip("c1", "front", big, b"\x01" * (32 << 20))
    body = start(home, alice(home), clip_id=big).json()
    received = 0
    with home.client.stream("GET", body["url"]) as streaming:
        chunks = streaming.iter_raw()
        received += len(next(chunks))
        ended = home.client.delete(f"/v1/playback/{body['session_id']}", headers=alice(home))
        assert ended.status_code == 204
        with pytest.raises(httpx.RemoteProtocolError):  # the body ends short of its length
            for chunk in chunks:
                received += len(chunk)
    assert received < 32 << 20


@pytest.fixture
def own_live(tmp_path):
    env = make_env(tmp_path)
    env.set_zone("c1", "front", Zone.OUTDOOR)
    env.put_clip("c1", "front", CLIP, DATA)
    with start_live(env) as running:
        yield running


def _sessions(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(SESSIONS_SQL))]


SESSIONS_SQL = "SELECT request_id, state FROM playback_sessions ORDER BY started_at"


def test_a_start_whose_decision_cannot_be_written_leaves_no_session(own_live):
    """The session row commits in its decision's transaction: no decision, no session at all
    (not even a voided one), and a token never handed out."""
    engine = create_db_engine(own_live.env.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        refused = start(own_live, alice(own_live))
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "audit_unavailable"
        assert "url" not in refused.json()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    try:
        assert _sessions(engine) == []
        started = start(own_live, alice(own_live))
        assert started.status_code == 201
        assert own_live.client.get(started.json()["url"]).content == DATA
        (request_id, state), *rest = _sessions(engine)
        assert rest == [] and state == "live"
        assert request_id == started.headers["x-request-id"]
        with engine.connect() as conn:  # the row stands beside the allowed decision that made it
            decisions = conn.execute(
                sa.text(
                    "SELECT count(*) FROM audit_events WHERE request_id = :r "
                    "AND type = 'access.decision' AND decision = 'allow'"
                ),
                {"r": request_id},
            ).scalar_one()
        assert decisions == 1
    finally:
        engine.dispose()
