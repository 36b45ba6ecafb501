"""Access requests over real HTTP (contract §13): the whole loop, every refusal, expiry,
the legal two-person rule, and concurrent approvals that make one grant."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gateway.types import Zone
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"
DATA = b"front-door footage " * 500
TICKET = "CASE-77"


@pytest.fixture
def home(live: Live) -> Live:
    env = live.env
    for camera, zone in (("front", Zone.OUTDOOR), ("back", Zone.INDOOR), ("nursery", Zone.PRIVATE)):
        env.set_zone("c1", camera, zone)
        env.put_clip("c1", camera, CLIP, DATA)
    env.put_clip("c2", "front", CLIP, b"another customer")
    env.set_zone("c2", "front", Zone.OUTDOOR)
    return live


def alice(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def agent(
    live: Live, sub: str = "sam", role: str = "support_agent", **headers: str
) -> dict[str, str]:
    return live.env.auth(sub, role, **headers)


def ask_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "customer_id": "c1",
        "cameras": ["front", "back"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T23:00:00Z",
        "purpose": "customer_support",
        "ticket": TICKET,
        "reason": "The customer says the doorbell missed a parcel.",
        "duration_seconds": 3600,
        "include_private": False,
    }
    body.update(changes)
    return body


def ask(live: Live, headers: dict[str, str] | None = None, **changes: object) -> dict[str, object]:
    r = live.client.post(
        "/v1/access-requests", json=ask_body(**changes), headers=headers or agent(live)
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def view(
    live: Live,
    camera: str = "front",
    sub: str = "sam",
    role: str = "support_agent",
    purpose: str = "customer_support",
    justification: str = f"{TICKET} parcel",
) -> httpx.Response:
    headers = agent(
        live, sub, role, **{"X-Access-Purpose": purpose, "X-Access-Justification": justification}
    )
    return live.client.get(f"/v1/footage/c1/{camera}/{CLIP}", headers=headers)


def events(live: Live, *types: str) -> list[dict[str, object]]:
    analyst = live.env.auth("ana", "security_analyst")
    r = live.client.get(
        "/v1/audit/events", params={"limit": 1000, "type": list(types)}, headers=analyst
    )
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_the_whole_loop_ask_narrow_approve_view_and_the_customer_sees_it(home: Live) -> None:
    refused = view(home)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "no_grant"
    # The refusal says how to ask, prefilled with what the agent sent.
    assert error["how_to_ask"] == {
        "method": "POST",
        "path": "/v1/access-requests",
        "body": {"customer_id": "c1", "cameras": ["front"], "purpose": "customer_support"},
    }

    asked = ask(home)
    assert asked["state"] == "pending" and str(asked["request_id"]).startswith("ar_")
    assert asked["approver"] == "customer"
    inbox = home.client.get("/v1/access-requests?state=pending", headers=alice(home)).json()
    assert [r["request_id"] for r in inbox["access_requests"]] == [asked["request_id"]]

    narrowing = {"cameras": ["front"], "duration_seconds": 600}
    r = home.client.post(
        f"/v1/access-requests/{asked['request_id']}/approve", json=narrowing, headers=alice(home)
    )
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["state"] == "approved"
    grant = approved["grant"]
    assert grant["grant_id"] == approved["grant_id"]
    assert grant["request_id"] == asked["request_id"]  # linked both ways
    assert grant["cameras"] == ["front"] and grant["grantee"] == "sam"
    assert grant["ticket"] == TICKET and grant["approval"] == "customer"

    seen = view(home)
    assert seen.status_code == 200 and seen.content == DATA
    assert view(home, camera="back").status_code == 403  # narrowed away
    assert view(home, justification="no ticket here").status_code == 403

    log = home.client.get("/v1/me/access-log", headers=alice(home)).json()["events"]
    allowed = [e for e in log if e["decision"] == "allow"]
    assert allowed and allowed[0]["principal"] == "sam"
    assert allowed[0]["grant_id"] == grant["grant_id"]

    created = events(home, "access_request.created")
    answered = events(home, "access_request.approved")
    made = events(home, "grant.created")
    assert [e["detail"]["request_id"] for e in created] == [asked["request_id"]]  # type: ignore[index]
    assert answered[0]["grant_id"] == grant["grant_id"]
    assert answered[0]["detail"]["narrowed"] == {  # type: ignore[index]
        "cameras": ["front"],
        "duration_seconds": 600,
    }
    assert made[0]["detail"]["request_id"] == asked["request_id"]  # type: ignore[index]
    assert answered[0]["seq"] + 1 == made[0]["seq"]  # type: ignore[operator]  # one transaction


def test_narrowing_may_not_widen(home: Live) -> None:
    asked = ask(home)
    path = f"/v1/access-requests/{asked['request_id']}/approve"
    for body, field in (
        ({"cameras": ["nursery"]}, "cameras"),
        ({"footage_from": "2026-11-26T00:00:00Z"}, "footage_from"),
        ({"footage_until": "2026-11-28T00:00:00Z"}, "footage_until"),
        ({"duration_seconds": 7200}, "duration_seconds"),
        ({"include_private": True}, "include_private"),
        ({"expires_at": "2026-11-28T00:00:00Z"}, "expires_at"),
    ):
        r = home.client.post(path, json=body, headers=alice(home))
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["error"]["message"]
    got = home.client.get(f"/v1/access-requests/{asked['request_id']}", headers=alice(home))
    assert got.json()["state"] == "pending"  # nothing changed


def test_a_bad_request_body_names_the_field(home: Live) -> None:
    for changes, field in (
        ({"cameras": []}, "cameras"),
        ({"ticket": "x"}, "ticket"),
        ({"purpose": "gossip"}, "purpose"),
        ({"purpose": "emergency"}, "emergency"),
        ({"reason": ""}, "reason"),
        ({"duration_seconds": 10**9}, "duration_seconds"),
        ({"footage_from": "yesterday"}, "footage_from"),
        ({"customer_id": "../c2"}, "customer_id"),
        ({"include_private": "yes"}, "include_private"),
    ):
        r = home.client.post("/v1/access-requests", json=ask_body(**changes), headers=agent(home))
        assert r.status_code == 400, (changes, r.text)
        assert field in r.json()["error"]["message"]
    r = home.client.post(
        "/v1/access-requests", json=ask_body(cameras=["attic"]), headers=agent(home)
    )
    assert r.json()["error"]["code"] == "unknown_camera"
    r = home.client.post(
        "/v1/access-requests", json=ask_body(purpose="model_training"), headers=agent(home)
    )
    assert r.json()["error"]["code"] == "purpose_not_grantable"
    r = home.client.post("/v1/access-requests", json=ask_body(), headers=alice(home))
    assert r.status_code == 403  # customers grant; they do not ask
    assert events(home, "access_request.created") == []


def test_deny_and_cancel_close_the_request_and_leave_no_grant(home: Live) -> None:
    denied = ask(home)
    r = home.client.post(
        f"/v1/access-requests/{denied['request_id']}/deny",
        json={"message": "Not without talking to me first."},
        headers=alice(home),
    )
    assert r.status_code == 200 and r.json()["state"] == "denied"
    assert r.json()["message"] == "Not without talking to me first."
    again = home.client.post(
        f"/v1/access-requests/{denied['request_id']}/approve", headers=alice(home)
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "request_not_pending"

    cancelled = ask(home)
    path = f"/v1/access-requests/{cancelled['request_id']}/cancel"
    assert home.client.post(path, headers=alice(home)).status_code == 403  # not the requester
    r = home.client.post(path, headers=agent(home))
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert view(home).status_code == 403
    assert len(events(home, "access_request.denied")) == 1
    assert len(events(home, "access_request.cancelled")) == 1
    assert events(home, "grant.created") == []
    mine = home.client.get("/v1/access-requests", headers=agent(home)).json()["access_requests"]
    assert {r["state"] for r in mine} == {"denied", "cancelled"}


def test_self_approval_staff_tokens_and_other_customers_are_refused(home: Live) -> None:
    # A token that is both the agent and a customer of c1 still cannot approve its own ask.
    both = home.env.auth("sam", "support_agent", "customer", customer_id="c1")
    asked = ask(home, headers=both)
    path = f"/v1/access-requests/{asked['request_id']}/approve"
    r = home.client.post(path, headers=both)
    assert r.status_code == 403 and r.json()["error"]["code"] == "self_approval"
    for headers in (
        agent(home, "lee", "support_lead"),  # staff never approve a customer's request
        home.env.auth("ana", "security_analyst"),
        home.env.auth("lex", "legal_approver"),
        home.env.auth("bob", "customer", customer_id="c2"),  # another customer
    ):
        r = home.client.post(path, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "not_owner"
        deny = home.client.post(path.replace("/approve", "/deny"), headers=headers)
        assert deny.status_code == 403
    # Another customer cannot even see it; neither can an unrelated agent.
    for headers in (home.env.auth("bob", "customer", customer_id="c2"), agent(home, "zed")):
        got = home.client.get(f"/v1/access-requests/{asked['request_id']}", headers=headers)
        assert got.status_code == 403 and got.json()["error"]["code"] == "not_owner"
        missing = home.client.get("/v1/access-requests/ar_nosuch", headers=headers)
        assert missing.status_code == 403  # authorization before existence
    analyst = home.env.auth("ana", "security_analyst")
    assert home.client.get("/v1/access-requests/ar_nosuch", headers=analyst).status_code == 404
    assert home.client.get("/v1/access-requests", headers=analyst).json()["access_requests"]
    got = home.client.get(f"/v1/access-requests/{asked['request_id']}", headers=alice(home))
    assert got.json()["state"] == "pending"
    assert events(home, "grant.created") == []


def test_a_pending_request_expires_and_the_sweep_records_it_once(home: Live) -> None:
    asked = ask(home)
    requests = home.services.access_requests
    wall_clock = requests.clock
    later = datetime.now(UTC) + timedelta(seconds=home.env.settings.access_request_ttl_seconds + 1)
    requests.clock = lambda: later
    try:
        got = home.client.get(f"/v1/access-requests/{asked['request_id']}", headers=alice(home))
        assert got.json()["state"] == "expired"  # as callers see it, before the sweep
        r = home.client.post(
            f"/v1/access-requests/{asked['request_id']}/approve", headers=alice(home)
        )
        assert r.status_code == 409
        assert home.server.run_on_loop(home.services.sweeper.once()) == (1, 0)
        assert home.server.run_on_loop(home.services.sweeper.once()) == (0, 0)  # once
    finally:
        requests.clock = wall_clock
    expired = events(home, "access_request.expired")
    assert len(expired) == 1 and expired[0]["principal"] == "gateway:requests"
    got = home.client.get("/v1/access-requests?state=expired", headers=agent(home)).json()[
        "access_requests"
    ]
    assert [r["request_id"] for r in got] == [asked["request_id"]]
    assert events(home, "grant.created") == []


def test_concurrent_approvals_make_one_grant(home: Live) -> None:
    asked = ask(home)
    path = f"{home.url}/v1/access-requests/{asked['request_id']}/approve"
    start = threading.Barrier(8)
    statuses: list[int] = []

    def approve() -> None:
        with httpx.Client(timeout=30) as client:
            start.wait()
            statuses.append(client.post(path, headers=alice(home)).status_code)

    threads = [threading.Thread(target=approve) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7
    assert len(events(home, "grant.created")) == 1
    assert len(events(home, "access_request.approved")) == 1
    grants = home.client.get("/v1/grants", headers=alice(home)).json()["grants"]
    assert len(grants) == 1 and grants[0]["request_id"] == asked["request_id"]


def test_legal_needs_a_legal_approver_who_is_not_the_requester(home: Live) -> None:
    lou = home.env.auth("lou", "legal", "legal_approver")
    refused = view(
        home, sub="lou", role="legal", purpose="legal_request", justification="SUBPOENA-9"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "approval_required"
    assert refused.json()["error"]["how_to_ask"]["body"]["purpose"] == "legal_request"

    asked = ask(home, headers=lou, purpose="legal_request", ticket="SUBPOENA-9")
    assert asked["approver"] == "staff" and asked["approver_roles"] == ["legal_approver"]
    path = f"/v1/access-requests/{asked['request_id']}/approve"
    for headers, code in (
        (lou, "self_approval"),  # holds the approver role, but asked
        (alice(home), "not_approver"),  # the customer does not answer a legal request
        (agent(home, "lee", "support_lead"), "not_approver"),
    ):
        r = home.client.post(path, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, r.text
    # A customer's own grant for legal_request does not stand in for the approval.
    grant = {
        "grantee": "lou",
        "purpose": "legal_request",
        "cameras": ["*"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-28T00:00:00Z",
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticket": "SUBPOENA-9",
    }
    assert home.client.post("/v1/grants", json=grant, headers=alice(home)).status_code == 201
    legal_view = {
        "sub": "lou",
        "role": "legal",
        "purpose": "legal_request",
        "justification": "SUBPOENA-9",
    }
    assert view(home, **legal_view).json()["error"]["code"] == "approval_required"

    approver = home.env.auth("val", "legal_approver")
    r = home.client.post(path, headers=approver)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved" and r.json()["grant"]["approval"] == "staff"
    assert home.client.post(path, headers=home.env.auth("vic", "legal_approver")).status_code == 409
    assert view(home, **legal_view).status_code == 200
    # The legal approver sees their queue; they never see footage themselves.
    queue = home.client.get("/v1/access-requests", headers=approver).json()["access_requests"]
    assert [q["request_id"] for q in queue] == [asked["request_id"]]
    assert (
        view(
            home,
            sub="val",
            role="legal_approver",
            purpose="legal_request",
            justification="SUBPOENA-9",
        ).status_code
        == 403
    )


def test_two_approvals_need_two_distinct_approvers(tmp_path, home: Live) -> None:
    from gateway.approvals import StaffApproval
    from gateway.types import Role

    approvals = home.services.policy.approvals
    two = {"legal_request": StaffApproval(2, frozenset({Role.LEGAL_APPROVER}))}
    object.__setattr__(approvals, "purposes", two)  # as a reload of approvals.toml would
    lou = home.env.auth("lou", "legal")
    asked = ask(home, headers=lou, purpose="legal_request", ticket="SUBPOENA-2")
    assert asked["approvals_needed"] == 2
    path = f"/v1/access-requests/{asked['request_id']}/approve"
    val = home.env.auth("val", "legal_approver")
    first = home.client.post(path, headers=val)
    assert first.status_code == 200 and first.json()["state"] == "pending"
    assert first.json()["approvals"] == ["val"] and first.json()["grant"] is None
    assert home.client.post(path, headers=val).json()["error"]["code"] == "already_approved"
    legal_view = {
        "sub": "lou",
        "role": "legal",
        "purpose": "legal_request",
        "justification": "SUBPOENA-2",
    }
    assert view(home, **legal_view).json()["error"]["code"] == "approval_required"
    second = home.client.post(path, headers=home.env.auth("vic", "legal_approver"))
    assert second.json()["state"] == "approved"
    assert second.json()["approvals"] == ["val", "vic"]
    assert view(home, **legal_view).status_code == 200
    assert len(events(home, "access_request.approval_added")) == 1
