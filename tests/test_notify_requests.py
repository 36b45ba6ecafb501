"""Access requests notify their customer (contract §14): every transition the customer should
hear of is posted, signed, once; a refused answer notifies nobody (it never committed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.types import Zone
from tests.support.server import Live, make_env, start_live, wait_for
from tests.support.webhooks import WebhookReceiver, new_secret
from tests.test_access_requests_http import CLIP, DATA, TICKET, agent, alice, ask, view
from tests.test_notify_http import FAST


@pytest.fixture
def notified(tmp_path: Path) -> Iterator[tuple[Live, WebhookReceiver]]:
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        env = make_env(
            tmp_path,
            {"FOOTGW_NOTIFY_WEBHOOK": receiver.url, "FOOTGW_NOTIFY_SECRET": secret, **FAST},
        )
        for camera in ("front", "back"):
            env.set_zone("c1", camera, Zone.OUTDOOR)
            env.put_clip("c1", camera, CLIP, DATA)
        with start_live(env) as live:
            yield live, receiver


def kinds(receiver: WebhookReceiver) -> list[str]:
    return sorted(m["body"]["type"] for m in receiver.accepted())


def test_each_transition_notifies_the_customer_once(notified) -> None:
    live, receiver = notified
    approved = ask(live)
    denied = ask(live)
    cancelled = ask(live)
    expiring = ask(live)
    # A refused answer (staff may not approve a customer's request) commits nothing.
    refused = live.client.post(
        f"/v1/access-requests/{approved['request_id']}/approve", headers=agent(live, "lee")
    )
    assert refused.status_code == 403
    base = "/v1/access-requests"
    r = live.client.post(f"{base}/{approved['request_id']}/approve", headers=alice(live))
    assert r.status_code == 200, r.text
    r = live.client.post(
        f"{base}/{denied['request_id']}/deny", json={"message": "not now"}, headers=alice(live)
    )
    assert r.status_code == 200, r.text
    r = live.client.post(f"{base}/{cancelled['request_id']}/cancel", headers=agent(live))
    assert r.status_code == 200, r.text
    requests = live.services.access_requests
    wall_clock = requests.clock
    requests.clock = lambda: datetime.now(UTC) + timedelta(days=2)
    try:
        live.server.run_on_loop(live.services.sweeper.once())
    finally:
        requests.clock = wall_clock
    assert view(live).status_code == 200  # the approved grant's first use
    expected = sorted(
        ["access_request.created"] * 4
        + [
            "access_request.approved",
            "access_request.denied",
            "access_request.cancelled",
            "access_request.expired",
            "grant.first_use",
        ]
    )
    wait_for(lambda: kinds(receiver) == expected, timeout=20)
    assert max(receiver.accepted_ids().values()) == 1 and receiver.rejected == []
    by_kind = {m["body"]["type"]: m["body"]["data"] for m in receiver.accepted()}
    assert by_kind["access_request.approved"]["request_id"] == approved["request_id"]
    assert by_kind["access_request.approved"]["by"] == "alice"
    assert by_kind["access_request.denied"]["message"] == "not now"
    assert by_kind["access_request.expired"]["request_id"] == expiring["request_id"]
    assert by_kind["access_request.expired"]["by"] == "gateway:requests"
    assert by_kind["access_request.created"]["ticket"] == TICKET
    listed = live.client.get("/v1/me/notifications?limit=100", headers=alice(live)).json()
    assert len(listed["notifications"]) == len(expected)
