"""Two gateways on one PostgreSQL (contract §12): a revocation on one stops playback on the
other within a second, and a session is summed up once whichever replica ends it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.types import Zone
from tests.support.cluster import fresh_schema, require_postgres
from tests.support.server import Live, make_env, start_live, wait_for

pytestmark = pytest.mark.postgres

CLIP = "20261127T101500Z.mp4"
DATA = bytes(range(256)) * 64
STAFF = {"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-9 replay"}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Live]]:
    with fresh_schema(require_postgres()) as url:
        env = make_env(
            tmp_path,
            {"FOOTGW_DATABASE_URL": url, "FOOTGW_STORAGE": f"file://{tmp_path / 'footage'}"},
        )
        env.set_zone("c1", "front", Zone.OUTDOOR)
        env.put_clip("c1", "front", CLIP, DATA)
        pair = [start_live(env), start_live(env)]
        try:
            yield pair
        finally:
            for live in pair:
                live.close()


def grant_and_play(a: Live) -> tuple[str, str]:
    alice = a.env.auth("alice", "customer", customer_id="c1")
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": expires,
        "ticket": "TICKET-9",
        "include_private": False,
    }
    grant = a.client.post("/v1/grants", json=body, headers=alice).json()
    sam = a.env.auth("sam", "support_agent", **STAFF)
    clip = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    r = a.client.post("/v1/playback", json=clip, headers=sam)
    assert r.status_code == 201, r.text
    return grant["grant_id"], r.json()["url"]


def ended(live: Live) -> list[dict]:
    analyst = live.env.auth("ana", "security_analyst")
    found = live.client.get("/v1/audit/events", params={"limit": 1000}, headers=analyst).json()[
        "events"
    ]
    return [e for e in found if e["type"] == "playback.ended"]


def test_a_revocation_on_one_replica_stops_playback_on_the_other(replicas: list[Live]) -> None:
    a, b = replicas
    grant_id, url = grant_and_play(a)
    assert b.client.get(url, headers={"Range": "bytes=0-99"}).status_code == 206
    alice = a.env.auth("alice", "customer", customer_id="c1")
    assert a.client.delete(f"/v1/grants/{grant_id}", headers=alice).status_code == 200
    revoked = time.monotonic()
    wait_for(lambda: b.client.get(url, headers={"Range": "bytes=0-99"}).status_code == 403, 1.5)
    assert time.monotonic() - revoked < 1.5
    assert a.client.get(url).status_code == 403
    [event] = wait_for(lambda: ended(a))
    assert event["reason"] == "revoked" and event["detail"]["requests"] >= 1


def test_playback_ended_is_written_once_across_replicas(replicas: list[Live]) -> None:
    a, b = replicas
    _, url = grant_and_play(a)
    assert a.client.get(url).status_code == 200
    assert b.client.get(url, headers={"Range": "bytes=100-"}).status_code == 206
    sam = a.env.auth("sam", "support_agent")
    # Recorded a moment after each answer (never awaited): idle means none is still pending.
    wait_for(
        lambda: a.client.get("/v1/playback", headers=sam).json()["sessions"][0]["requests"] == 2
    )
    late = lambda: datetime.now(UTC) + timedelta(seconds=601)  # noqa: E731
    for live in replicas:
        live.services.playback.clock = late
    swept = [live.server.run_on_loop(live.services.playback.reaper.sweep()) for live in replicas]
    swept += [live.server.run_on_loop(live.services.playback.reaper.sweep()) for live in replicas]
    assert sum(swept) == 1
    assert a.client.get(url).status_code == 403 and b.client.get(url).status_code == 403
    [event] = ended(b)
    assert event["reason"] == "idle" and event["detail"]["requests"] == 2
    assert event["bytes_sent"] == len(DATA) * 2 - 100
