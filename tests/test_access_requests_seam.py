"""The notification seam (contract §13): every state change of a request runs the
`on_transition` hooks inside its own transaction, on its connection."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.access_requests.service import Transition
from gateway.db import access_requests
from gateway.types import EventType, Zone
from tests.support.server import Live

BODY = {
    "customer_id": "c1",
    "cameras": ["front"],
    "footage_from": "2026-11-27T00:00:00Z",
    "footage_until": "2026-11-28T00:00:00Z",
    "purpose": "customer_support",
    "ticket": "T-9",
    "reason": "parcel",
}


def test_hooks_see_every_transition_in_its_transaction_and_can_veto_it(live: Live) -> None:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    seen: list[tuple[str, str | None, int]] = []
    veto = {"on": False}

    def hook(conn: Connection, transition: Transition) -> None:
        # The row is already changed on this connection: a notification row written here
        # commits with it (and with its audit event), or not at all.
        state = conn.execute(
            sa.select(access_requests.c.state).where(
                access_requests.c.request_id == transition.request.request_id
            )
        ).scalar_one()
        seen.append((transition.event_type, transition.previous, state))
        if veto["on"]:
            raise RuntimeError("the outbox refused")

    live.services.access_requests.on_transition(hook)
    agent = live.env.auth("sam", "support_agent")
    owner = live.env.auth("alice", "customer", customer_id="c1")
    asked = live.client.post("/v1/access-requests", json=BODY, headers=agent).json()
    approved = live.client.post(f"/v1/access-requests/{asked['request_id']}/approve", headers=owner)
    assert approved.status_code == 200
    assert seen == [
        (EventType.ACCESS_REQUEST_CREATED, None, "pending"),
        (EventType.ACCESS_REQUEST_APPROVED, "pending", "approved"),
    ]

    veto["on"] = True
    second = live.client.post("/v1/access-requests", json=BODY, headers=agent)
    assert second.status_code == 500
    listed = live.client.get("/v1/access-requests", headers=agent).json()["access_requests"]
    assert [r["request_id"] for r in listed] == [asked["request_id"]]  # rolled back
    analyst = live.env.auth("ana", "security_analyst")
    created = live.client.get(
        "/v1/audit/events", params={"type": "access_request.created"}, headers=analyst
    ).json()["events"]
    assert len(created) == 1  # its event rolled back with it
