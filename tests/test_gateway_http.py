"""The core flow over real HTTP: uvicorn on an ephemeral port, httpx, SQLite, a file tree."""

from __future__ import annotations

import asyncio
import hashlib
import time

import jwt
import pytest
from starlette.requests import Request

from gateway.middleware import error_handlers
from gateway.types import Zone
from tests.support.server import wait_for

CLIP = "20261127T101500Z.mp4"
DATA = hashlib.sha256(b"x").digest() * (3 * 1024 * 1024 // 32 + 7)  # ~3 MiB, not aligned
STAFF = {"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-9 help"}


@pytest.fixture
def seeded(live):
    live.env.put_clip("c1", "front", CLIP, DATA)
    live.env.put_clip("c2", "garage", CLIP, b"bob's footage")
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    return live


def owner(live, **headers):
    return live.env.auth("alice", "customer", customer_id="c1", **headers)


def test_owner_streams_their_clip_with_the_contract_headers(seeded):
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded))
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["etag"] and r.headers["last-modified"]
    assert r.headers["x-request-id"] and r.headers["x-audit-event-id"]


def test_every_view_is_audited_before_and_after(seeded):
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded))
    analyst = seeded.env.auth("ana", "security_analyst")

    def both_events():
        found = seeded.client.get("/v1/audit/events", headers=analyst).json()["events"]
        return found if any(e["type"] == "access.complete" for e in found) else None

    events = wait_for(both_events)
    decision = next(e for e in events if e["event_id"] == r.headers["x-audit-event-id"])
    assert decision["type"] == "access.decision" and decision["decision"] == "allow"
    assert decision["principal"] == "alice" and decision["clip_id"] == CLIP
    assert decision["request_id"] == r.headers["x-request-id"]
    complete = next(e for e in events if e["type"] == "access.complete")
    assert complete["request_id"] == decision["request_id"]
    assert complete["bytes_sent"] == len(DATA) and complete["detail"]["completed"] is True


def test_owner_cannot_read_another_customers_clip(seeded):
    r = seeded.client.get(f"/v1/footage/c2/garage/{CLIP}", headers=owner(seeded))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_owner"
    assert r.headers["x-audit-event-id"]


def test_authorization_comes_before_existence(seeded):
    missing = "20261127T111111Z.mp4"
    other = seeded.client.get(f"/v1/footage/c2/garage/{missing}", headers=owner(seeded))
    assert other.status_code == 403  # not 404: the caller may not learn what exists
    mine = seeded.client.get(f"/v1/footage/c1/front/{missing}", headers=owner(seeded))
    assert mine.status_code == 404 and mine.json()["error"]["code"] == "not_found"


def test_analyst_cannot_read_footage(seeded):
    headers = seeded.env.auth("ana", "security_analyst", **STAFF)
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    assert r.status_code == 403 and r.content.find(DATA[:64]) == -1
    assert r.json()["error"]["code"] == "purpose_not_permitted"


def test_support_agent_without_grant_is_refused_with_no_grant(seeded):
    headers = seeded.env.auth("sam", "support_agent", **STAFF)
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_grant"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "purpose_required"),
        ({"X-Access-Purpose": "customer_support"}, "justification_required"),
    ],
)
def test_staff_headers_are_required(seeded, headers, code):
    r = seeded.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers=seeded.env.auth("sam", "support_agent", **headers)
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == code


def test_unknown_purpose_is_a_bad_request(seeded):
    headers = seeded.env.auth("sam", "support_agent", **{**STAFF, "X-Access-Purpose": "fun"})
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_no_token_is_401_with_the_json_shape(seeded):
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["x-request-id"] and r.headers["x-audit-event-id"]


def test_listing_is_audited_and_shows_zone(seeded):
    r = seeded.client.get("/v1/footage/c1/front", headers=owner(seeded))
    assert r.status_code == 200 and r.headers["x-audit-event-id"]
    assert r.json()["clips"] == [
        {
            "clip_id": CLIP,
            "recorded_at": "2026-11-27T10:15:00+00:00",
            "size": len(DATA),
            "zone": "outdoor",
        }
    ]


def test_cameras_zone_defaults_to_private_and_owner_sets_it(seeded):
    cams = seeded.client.get(
        "/v1/cameras/c2", headers=seeded.env.auth("bob", "customer", customer_id="c2")
    ).json()["cameras"]
    assert cams == [{"camera_id": "garage", "zone": "private", "label": "", "zone_set": False}]
    r = seeded.client.put(
        "/v1/cameras/c2/garage",
        json={"zone": "outdoor", "label": "Garage"},
        headers=seeded.env.auth("bob", "customer", customer_id="c2"),
    )
    assert r.status_code == 200 and r.json()["zone"] == "outdoor"
    stolen = seeded.client.put(
        "/v1/cameras/c2/garage", json={"zone": "outdoor"}, headers=owner(seeded)
    )
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "not_owner"
    bad = seeded.client.put(
        "/v1/cameras/c2/garage",
        json={"zone": "attic"},
        headers=seeded.env.auth("bob", "customer", customer_id="c2"),
    )
    assert bad.status_code == 400


def test_health_ready_metrics_openapi(seeded):
    assert seeded.client.get("/healthz").json() == {"status": "ok"}
    ready = seeded.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded))
    assert b"footgw_http_requests_total" in seeded.client.get("/metrics").content
    spec = seeded.client.get("/openapi.json").json()
    assert "/v1/footage/{customer_id}/{camera_id}/{clip_id}" in spec["paths"]


SIZE = len(DATA)
RANGE_TABLE = [
    # (Range header, status, (start, end) served or None for the whole clip)
    ("bytes=0-99", 206, (0, 99)),
    ("bytes=100-", 206, (100, SIZE - 1)),
    ("bytes=-500", 206, (SIZE - 500, SIZE - 1)),
    (f"bytes=0-{SIZE + 10}", 206, (0, SIZE - 1)),
    (f"bytes={SIZE - 1}-", 206, (SIZE - 1, SIZE - 1)),
    (f"bytes={SIZE}-", 416, None),
    ("bytes=-0", 416, None),
    ("bytes=abc", 200, None),
    ("bytes=5-1", 200, None),
    ("items=0-10", 200, None),
    ("bytes=0-1,5-9", 200, None),
    (f"bytes={SIZE}-,{SIZE + 5}-", 416, None),
    # Longer than the parser reads (4 KiB) yet inside the server's 16 KiB head limit.
    ("bytes=0-1," * 500 + "0-1", 200, None),
]


@pytest.mark.parametrize(
    ("header", "status", "span"), RANGE_TABLE, ids=[h[:30] for h, _, _ in RANGE_TABLE]
)
def test_range_conformance_through_the_gateway(seeded, header, status, span):
    r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded, Range=header))
    assert r.status_code == status
    assert r.headers["x-audit-event-id"]
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{SIZE}"
        assert r.json()["error"]["code"] == "range_not_satisfiable"
    elif status == 206:
        start, end = span
        assert r.content == DATA[start : end + 1]
        assert r.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
        assert r.headers["content-length"] == str(end - start + 1)
    else:
        assert r.content == DATA and "content-range" not in r.headers


def test_head_sends_headers_only_and_is_audited(seeded):
    r = seeded.client.head(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded))
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(SIZE) and r.headers["x-audit-event-id"]
    ranged = seeded.client.head(
        f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded, Range="bytes=0-9")
    )
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"


def test_each_event_is_also_one_structured_log_line(seeded):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        r = seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded))
        wait_for(lambda: any(e.get("type") == "access.complete" for e in logs))
    lines = [entry for entry in logs if entry.get("event") == "audit_event"]
    decision = next(e for e in lines if e["event_id"] == r.headers["x-audit-event-id"])
    assert decision["type"] == "access.decision" and decision["hash"]
    assert any(e["type"] == "access.complete" for e in lines)
    token = owner(seeded)["Authorization"].split()[1]
    assert all(token not in repr(entry) for entry in logs)


def test_break_glass_needs_a_token_issued_for_at_most_15_minutes(seeded):
    """exp - iat <= 900 s, iat required (contract §6): a long-lived token in its last minutes,
    or a short one with no iat, is refused and audited; a token issued for 15 minutes works."""
    now = int(time.time())
    emergency = {"X-Access-Purpose": "emergency", "X-Access-Justification": "INC-7 smoke alarm"}
    path = f"/v1/footage/c1/front/{CLIP}"

    def lead(**times):
        claims = {"sub": "lee", "roles": ["support_lead"]} | times
        token = jwt.encode(claims, seeded.env.private_key, algorithm="EdDSA")
        return {"Authorization": f"Bearer {token}", **emergency}

    ok = seeded.client.get(path, headers=lead(iat=now - 60, exp=now + 840))
    assert ok.status_code == 200 and ok.content == DATA
    for claims in (
        {"iat": now - 8 * 3600, "exp": now + 300},  # an 8-hour token in its last 5 minutes
        {"iat": now - 60, "exp": now + 841},  # issued for 901 s
        {"exp": now + 300},  # no iat: no known lifetime
    ):
        r = seeded.client.get(path, headers=lead(**claims))
        assert r.status_code == 403, claims
        assert r.json()["error"]["code"] == "purpose_not_permitted"
        assert r.headers["x-audit-event-id"] and b"\x00" not in r.content


def test_every_response_says_nosniff(seeded):
    """X-Content-Type-Options: nosniff on every response: footage, JSON errors (which may echo
    a caller's text), 401s, 404s of unknown routes, health and metrics."""
    responses = [
        seeded.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(seeded)),
        seeded.client.get(f"/v1/footage/c2/garage/{CLIP}", headers=owner(seeded)),
        seeded.client.get("/v1/footage/c1/front/<script>", headers=owner(seeded)),
        seeded.client.get("/v1/grants"),
        seeded.client.get("/v1/nothing-here"),
        seeded.client.post("/v1/grants", content=b"{", headers=owner(seeded)),
        seeded.client.get("/healthz"),
        seeded.client.get("/readyz"),
        seeded.client.get("/metrics"),
        seeded.client.get("/openapi.json"),
        seeded.client.get("/console/"),
    ]
    for r in responses:
        assert r.headers.get("x-content-type-options") == "nosniff", (r.request.url, r.status_code)
    # A 500 is sent from outside the middleware (Starlette's ServerErrorMiddleware): its handler.
    unexpected = error_handlers()[Exception]
    crashed = asyncio.run(unexpected(Request({"type": "http"}), RuntimeError("boom")))
    assert crashed.status_code == 500 and crashed.headers["x-content-type-options"] == "nosniff"


def test_audit_search_refuses_an_unknown_event_type_as_it_refuses_an_unknown_decision(seeded):
    analyst = seeded.env.auth("ana", "security_analyst")
    known = seeded.client.get("/v1/audit/events?type=access.decision", headers=analyst)
    assert known.status_code == 200
    for query in ("type=flag.raise", "type=access.decision&type=nope"):
        r = seeded.client.get(f"/v1/audit/events?{query}", headers=analyst)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", query
