"""GET /v1/flags and POST /v1/flags/{id}/resolve over real HTTP (contract §5)."""

from __future__ import annotations

import pytest

from gateway.types import Zone
from tests.test_detection_http import (
    ALWAYS_WORKING,
    agent,
    analyst,
    clip_at,
    events,
    grant,
)
from tests.test_detection_http import running as running  # the fixture, shared


@pytest.fixture
def flagged(running):
    """A gateway with one open private_zone_access flag on sam."""
    live = running(ALWAYS_WORKING)
    clip = clip_at(0)
    live.env.put_clip("c1", "bedroom", clip, b"x")
    live.env.set_zone("c1", "bedroom", Zone.PRIVATE)
    grant(live, "c1", "sam", "T-8", include_private=True)
    r = live.client.get(f"/v1/footage/c1/bedroom/{clip}", headers=agent(live, "sam", "T-8"))
    assert r.status_code == 200
    live.cause = r.headers["x-audit-event-id"]
    return live


def test_list_shows_the_contract_fields(flagged):
    r = flagged.client.get("/v1/flags", params={"status": "open"}, headers=analyst(flagged))
    assert r.status_code == 200
    [flag] = r.json()["flags"]
    for name in ("flag_id", "rule", "severity", "principal", "created_at", "event_ids", "status"):
        assert name in flag
    assert flag["rule"] == "private_zone_access" and flag["status"] == "open"
    assert flag["event_ids"] == [flagged.cause]


def test_resolve_closes_the_flag_and_both_ends_are_audited(flagged):
    [flag] = flagged.client.get("/v1/flags", headers=analyst(flagged)).json()["flags"]
    r = flagged.client.post(
        f"/v1/flags/{flag['flag_id']}/resolve",
        json={"resolution": "Customer asked for it, ticket T-8."},
        headers=analyst(flagged),
    )
    assert r.status_code == 200 and r.headers["x-audit-event-id"]
    body = r.json()
    assert body["status"] == "resolved" and body["resolved_by"] == "ana"
    assert body["resolution"] == "Customer asked for it, ticket T-8."
    opened = flagged.client.get("/v1/flags", params={"status": "open"}, headers=analyst(flagged))
    assert opened.json()["flags"] == []
    closed = flagged.client.get(
        "/v1/flags", params={"status": "resolved"}, headers=analyst(flagged)
    )
    assert [f["flag_id"] for f in closed.json()["flags"]] == [flag["flag_id"]]
    raised = events(flagged, type="flag.raised")
    resolved = events(flagged, type="flag.resolved")
    assert [e["detail"]["flag_id"] for e in raised] == [flag["flag_id"]]
    assert [e["detail"]["flag_id"] for e in resolved] == [flag["flag_id"]]
    assert resolved[0]["principal"] == "ana"
    assert resolved[0]["event_id"] == r.headers["x-audit-event-id"]
    again = flagged.client.post(
        f"/v1/flags/{flag['flag_id']}/resolve",
        json={"resolution": "twice"},
        headers=analyst(flagged),
    )
    assert again.status_code == 400


@pytest.mark.parametrize("body", [{}, {"resolution": ""}, {"resolution": 5}, [1], "x"])
def test_resolve_needs_a_resolution_text(flagged, body):
    [flag] = flagged.client.get("/v1/flags", headers=analyst(flagged)).json()["flags"]
    r = flagged.client.post(
        f"/v1/flags/{flag['flag_id']}/resolve", json=body, headers=analyst(flagged)
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


def test_unknown_flag_is_404_and_bad_status_is_400(flagged):
    r = flagged.client.post(
        "/v1/flags/flg_nope/resolve", json={"resolution": "x"}, headers=analyst(flagged)
    )
    assert r.status_code == 404
    r = flagged.client.get("/v1/flags", params={"status": "maybe"}, headers=analyst(flagged))
    assert r.status_code == 400


def test_only_security_and_admin_manage_flags(flagged):
    admin = flagged.env.auth("root", "admin")
    assert flagged.client.get("/v1/flags", headers=admin).status_code == 200
    for headers in (
        agent(flagged, "sam", "T-8"),
        flagged.env.auth("alice", "customer", customer_id="c1"),
    ):
        assert flagged.client.get("/v1/flags", headers=headers).status_code == 403
        r = flagged.client.post("/v1/flags/x/resolve", json={"resolution": "x"}, headers=headers)
        assert r.status_code == 403
    assert flagged.client.get("/v1/flags").status_code == 401


@pytest.mark.parametrize("roles", [("admin",), ("security_analyst",), ("admin", "support_agent")])
def test_a_principal_cannot_resolve_its_own_flag(flagged, roles):
    """Self-review is not review: sam, holding a role that manages flags (a second token, a
    promotion), is refused on a flag about sam, and the flag stays open for someone else."""
    [flag] = flagged.client.get("/v1/flags", headers=analyst(flagged)).json()["flags"]
    assert flag["principal"] == "sam"
    own = flagged.env.auth("sam", *roles)
    assert flagged.client.get("/v1/flags", headers=own).status_code == 200  # may still look
    r = flagged.client.post(
        f"/v1/flags/{flag['flag_id']}/resolve", json={"resolution": "all fine"}, headers=own
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "self_review"
    assert "x-audit-event-id" not in r.headers
    still = flagged.client.get("/v1/flags", params={"status": "open"}, headers=analyst(flagged))
    assert [f["flag_id"] for f in still.json()["flags"]] == [flag["flag_id"]]
    assert events(flagged, type="flag.resolved") == []
    path = f"/v1/flags/{flag['flag_id']}/resolve"
    r = flagged.client.post(path, json={"resolution": "checked"}, headers=analyst(flagged))
    assert r.status_code == 200 and r.json()["resolved_by"] == "ana"
