"""Playback sessions over real HTTP (contract §12): start, watch, refuse, end, list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
