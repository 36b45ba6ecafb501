"""Request ids are the server's own (contract §5, Headers): a caller's X-Request-ID is kept
beside ours as `detail.client_request_id`, never as the id events are joined by."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from gateway.db import create_db_engine
from tests.support.faults import trace, wait_for_complete
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = bytes(range(256)) * 800
CHOSEN = "chosen-by-caller-01"


def decision_of(live: Live, response: httpx.Response) -> dict:
    events = trace(live.env.settings.database_url, response.headers["x-request-id"])
    [decision] = [e for e in events if e["type"] == "access.decision"]
    assert decision["event_id"] == response.headers["x-audit-event-id"]
    return decision


def test_a_reused_caller_request_id_cannot_hide_a_full_view(live: Live) -> None:
    live.env.put_clip("c1", "front", CLIP, DATA)
    owner = live.env.auth("alice", "customer", customer_id="c1", **{"X-Request-ID": CHOSEN})
    full = live.client.get(PATH, headers=owner)
    head = live.client.head(PATH, headers=owner)  # the same caller id: 0 bytes
    part = live.client.get(PATH, headers={**owner, "Range": "bytes=0-9"})
    assert (full.status_code, head.status_code, part.status_code) == (200, 200, 206)
    assert full.content == DATA
    ours = [r.headers["x-request-id"] for r in (full, head, part)]
    assert len(set(ours)) == 3 and CHOSEN not in ours
    for request_id in ours:
        wait_for_complete(live.env.settings.database_url, request_id)

    log = live.client.get("/v1/me/access-log", headers=owner).json()["events"]
    sent = {e["event_id"]: e["bytes_sent"] for e in log}
    assert sent[full.headers["x-audit-event-id"]] == len(DATA)
    assert sent[head.headers["x-audit-event-id"]] == 0
    assert sent[part.headers["x-audit-event-id"]] == 10
    for response in (full, head, part):  # the caller's id is kept, beside ours
        assert decision_of(live, response)["detail"]["client_request_id"] == CHOSEN
        [complete] = [
            e
            for e in trace(live.env.settings.database_url, response.headers["x-request-id"])
            if e["type"] == "access.complete"
        ]
        assert complete["detail"]["client_request_id"] == CHOSEN


def test_a_caller_id_that_is_not_plainly_an_id_is_not_kept(live: Live) -> None:
    live.env.put_clip("c1", "front", CLIP, DATA)
    owner = live.env.auth("alice", "customer", customer_id="c1", **{"X-Request-ID": "a b\tc"})
    r = live.client.get(PATH, headers=owner)
    assert r.status_code == 200 and r.headers["x-request-id"] != "a b\tc"
    assert "client_request_id" not in decision_of(live, r)["detail"]


def test_every_response_carries_the_servers_request_id(live: Live) -> None:
    sent = {"X-Request-ID": CHOSEN}
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/nowhere"),
        ("GET", "/v1/grants"),
        ("GET", "/console/"),
        ("GET", PATH),
        ("PUT", PATH),
        ("DELETE", PATH),
    ]:
        r = live.client.request(method, path, headers=sent)
        assert len(r.headers["x-request-id"]) == 32 and r.headers["x-request-id"] != CHOSEN, (
            method,
            path,
        )


def test_an_unhandled_error_is_a_500_with_the_request_id(live: Live) -> None:
    engine = create_db_engine(live.env.settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE flags RENAME TO flags_away"))
        r = live.client.get("/v1/flags", headers=live.env.auth("ana", "security_analyst"))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE flags_away RENAME TO flags"))
        engine.dispose()
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert len(r.headers["x-request-id"]) == 32
    assert "flags_away" not in r.text  # the cause is logged, never told
