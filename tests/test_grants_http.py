"""Customer control over real HTTP: grants, purpose binding, the access log, and deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.types import Zone
from tests.support.server import wait_for

CLIP = "20261127T101500Z.mp4"
LATE = "20261127T231500Z.mp4"
DATA = b"front-door footage " * 1000


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def home(live):
    env = live.env
    for camera, zone in (("front", Zone.OUTDOOR), ("nursery", Zone.PRIVATE)):
        env.set_zone("c1", camera, zone)
        env.put_clip("c1", camera, CLIP, DATA)
    env.put_clip("c1", "front", LATE, DATA)
    env.set_zone("c1", "back", Zone.INDOOR)
    env.put_clip("c1", "back", CLIP, DATA)
    env.put_clip("c2", "front", CLIP, b"other customer")
    return live


def alice(live, **headers):
    return live.env.auth("alice", "customer", customer_id="c1", **headers)


def grant_body(**changes):
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front", "nursery"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": iso(datetime.now(UTC) + timedelta(hours=2)),
        "ticket": "TICKET-7",
        "include_private": False,
    }
    body.update(changes)
    return body


def create(live, **changes):
    r = live.client.post("/v1/grants", json=grant_body(**changes), headers=alice(live))
    assert r.status_code == 201, r.text
    return r.json()


def sam_get(
    live,
    path,
    sub="sam",
    role="support_agent",
    purpose="customer_support",
    justification="TICKET-7 delivery question",
):
    headers = live.env.auth(
        sub, role, **{"X-Access-Purpose": purpose, "X-Access-Justification": justification}
    )
    return live.client.get(path, headers=headers)


def events(live, **filters):
    analyst = live.env.auth("ana", "security_analyst")
    return live.client.get(
        "/v1/audit/events", params={"limit": 1000, **filters}, headers=analyst
    ).json()["events"]


def test_grant_lets_the_named_agent_watch_and_records_the_grant_id(home):
    grant = create(home)
    assert grant["state"] == "active" and grant["grant_id"].startswith("gr_")
    r = sam_get(home, f"/v1/footage/c1/front/{CLIP}")
    assert r.status_code == 200 and r.content == DATA
    decision = next(e for e in events(home) if e["event_id"] == r.headers["x-audit-event-id"])
    assert decision["grant_id"] == grant["grant_id"] and decision["reason"] == "grant"
    created = [e for e in events(home) if e["type"] == "grant.created"]
    assert created[0]["principal"] == "alice" and created[0]["grant_id"] == grant["grant_id"]
    listed = home.client.get("/v1/grants", headers=alice(home)).json()["grants"]
    assert listed[0]["use_count"] == 1
    mine = home.client.get("/v1/grants", headers=home.env.auth("sam", "support_agent"))
    assert [g["grant_id"] for g in mine.json()["grants"]] == [grant["grant_id"]]


# Each condition flipped alone, over HTTP, with the reason the agent gets.
MATRIX = {
    "wrong grantee": ({}, {"sub": "eve"}, f"/v1/footage/c1/front/{CLIP}", "no_grant"),
    "other camera": ({}, {}, f"/v1/footage/c1/back/{CLIP}", "no_grant"),
    "outside the window": ({}, {}, f"/v1/footage/c1/front/{LATE}", "no_grant"),
    "purpose mismatch": (
        {"purpose": "safety_investigation"},
        {},
        f"/v1/footage/c1/front/{CLIP}",
        "no_grant",
    ),
    "ticket missing": (
        {},
        {"justification": "just curious"},
        f"/v1/footage/c1/front/{CLIP}",
        "no_grant",
    ),
    "private without include_private": (
        {},
        {},
        f"/v1/footage/c1/nursery/{CLIP}",
        "zone_restricted",
    ),
    "other customer": ({}, {}, f"/v1/footage/c2/front/{CLIP}", "no_grant"),
    "another role's purpose": (
        {},
        {"role": "trust_safety"},
        f"/v1/footage/c1/front/{CLIP}",
        "purpose_not_permitted",
    ),
}


@pytest.mark.parametrize("case", MATRIX)
def test_grant_matrix_each_flip_is_denied_with_its_code_and_audited(home, case):
    grant_changes, request_changes, path, code = MATRIX[case]
    create(home, **grant_changes)
    r = sam_get(home, path, **request_changes)
    assert r.status_code == 403 and r.json()["error"]["code"] == code
    assert DATA[:32] not in r.content
    decision = next(e for e in events(home) if e["event_id"] == r.headers["x-audit-event-id"])
    assert decision["decision"] == "deny" and decision["reason"] == code


def test_private_camera_with_include_private_is_allowed(home):
    create(home, include_private=True)
    assert sam_get(home, f"/v1/footage/c1/nursery/{CLIP}").status_code == 200


def test_role_grant_covers_every_agent_in_the_role(home):
    create(home, grantee="role:support_agent")
    assert sam_get(home, f"/v1/footage/c1/front/{CLIP}", sub="someone-else").status_code == 200


def test_revocation_is_immediate(home):
    grant = create(home)
    assert sam_get(home, f"/v1/footage/c1/front/{CLIP}").status_code == 200
    r = home.client.delete(f"/v1/grants/{grant['grant_id']}", headers=alice(home))
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    after = sam_get(home, f"/v1/footage/c1/front/{CLIP}")
    assert after.status_code == 403 and after.json()["error"]["code"] == "no_grant"
    revoked = [e for e in events(home) if e["type"] == "grant.revoked"]
    assert revoked[0]["grant_id"] == grant["grant_id"] and revoked[0]["principal"] == "alice"
    states = home.client.get("/v1/grants", headers=alice(home)).json()["grants"]
    assert states[0]["state"] == "revoked"


def test_only_the_owner_or_security_revokes(home):
    grant = create(home)
    bob = home.env.auth("bob", "customer", customer_id="c2")
    r = home.client.delete(f"/v1/grants/{grant['grant_id']}", headers=bob)
    assert r.status_code == 403
    agent = home.client.delete(
        f"/v1/grants/{grant['grant_id']}", headers=home.env.auth("sam", "support_agent")
    )
    assert agent.status_code == 403
    unknown = home.client.delete("/v1/grants/gr_nope", headers=bob)
    assert unknown.status_code == 403  # authorization before existence
    analyst = home.env.auth("ana", "security_analyst")
    assert home.client.delete("/v1/grants/gr_nope", headers=analyst).status_code == 404
    ok = home.client.delete(f"/v1/grants/{grant['grant_id']}", headers=analyst)
    assert ok.status_code == 200 and ok.json()["revoked_by"] == "ana"


def test_bad_grant_bodies_are_400_naming_the_field_and_store_nothing(home):
    for field, value in (
        ("footage_until", "2026-11-26T00:00:00Z"),
        ("cameras", []),
        ("expires_at", "2020-01-01T00:00:00Z"),
        ("purpose", "fun"),
    ):
        r = home.client.post("/v1/grants", json=grant_body(**{field: value}), headers=alice(home))
        assert r.status_code == 400 and field in r.json()["error"]["message"]
    not_json = home.client.post("/v1/grants", content=b"{", headers=alice(home))
    assert not_json.status_code == 400
    assert home.client.get("/v1/grants", headers=alice(home)).json()["grants"] == []
    assert not [e for e in events(home) if e["type"] == "grant.created"]


def test_staff_cannot_grant(home):
    r = home.client.post(
        "/v1/grants", json=grant_body(), headers=home.env.auth("sam", "support_agent")
    )
    assert r.status_code == 403


def test_staff_listing_shows_only_the_granted_window(home):
    create(home)
    r = sam_get(home, "/v1/footage/c1/front")
    assert r.status_code == 200
    assert [c["clip_id"] for c in r.json()["clips"]] == [CLIP]  # LATE is outside the window
    owner = home.client.get("/v1/footage/c1/front", headers=alice(home)).json()["clips"]
    assert {c["clip_id"] for c in owner} == {CLIP, LATE}


def test_access_log_shows_every_look_newest_first_to_the_owner_only(home):
    create(home)
    denied = sam_get(home, f"/v1/footage/c1/back/{CLIP}")
    allowed = sam_get(home, f"/v1/footage/c1/front/{CLIP}")

    def completed_log():
        found = home.client.get("/v1/me/access-log", headers=alice(home)).json()["events"]
        return found if found and found[0]["bytes_sent"] is not None else None

    log = wait_for(completed_log)
    assert [e["event_id"] for e in log[:2]] == [
        allowed.headers["x-audit-event-id"],
        denied.headers["x-audit-event-id"],
    ]
    newest = log[0]
    assert newest["principal"] == "sam" and newest["roles"] == ["support_agent"]
    assert newest["purpose"] == "customer_support"
    assert newest["justification"] == "TICKET-7 delivery question"
    assert newest["clip_id"] == CLIP and newest["decision"] == "allow"
    assert newest["bytes_sent"] == len(DATA) and newest["completed"] is True
    assert log[1]["decision"] == "deny" and log[1]["reason"] == "no_grant"
    bob_log = home.client.get(
        "/v1/me/access-log", headers=home.env.auth("bob", "customer", customer_id="c2")
    )
    assert bob_log.json()["events"] == []
    staff = home.client.get("/v1/me/access-log", headers=home.env.auth("sam", "support_agent"))
    assert staff.status_code == 403


def test_access_log_pages(home):
    for _ in range(5):
        home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=alice(home))
    first = home.client.get("/v1/me/access-log?limit=2", headers=alice(home)).json()
    second = home.client.get(
        f"/v1/me/access-log?limit=2&before_seq={first['next_before_seq']}", headers=alice(home)
    ).json()
    seqs = [e["seq"] for e in first["events"] + second["events"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4


def test_every_page_of_the_access_log_finds_its_completions(home):
    # Completions are read from the customer's events after the page's oldest decision
    # (gateway/api/me.py): an older page, with later views after it, still finds its own.
    for _ in range(5):
        home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=alice(home))

    def pages():
        first = home.client.get("/v1/me/access-log?limit=2", headers=alice(home)).json()
        before = first["next_before_seq"]
        second = home.client.get(
            f"/v1/me/access-log?limit=3&before_seq={before}", headers=alice(home)
        ).json()
        found = first["events"] + second["events"]
        return found if all(e["bytes_sent"] is not None for e in found) else None

    log = wait_for(pages)
    assert len(log) == 5
    assert all(e["bytes_sent"] == len(DATA) and e["completed"] is True for e in log)


def test_owner_deletes_for_good_and_the_log_keeps_it(home):
    r = home.client.delete(f"/v1/footage/c1/front/{CLIP}", headers=alice(home))
    assert r.status_code == 204 and r.headers["x-audit-event-id"]
    gone = home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=alice(home))
    assert gone.status_code == 404
    create(home)
    assert sam_get(home, f"/v1/footage/c1/front/{CLIP}").status_code == 404  # granted: 404
    bob = home.env.auth("bob", "customer", customer_id="c2")
    assert home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=bob).status_code == 403
    deleted = [e for e in events(home) if e["type"] == "footage.deleted"]
    assert deleted[0]["clip_id"] == CLIP and deleted[0]["principal"] == "alice"


def test_only_the_owner_deletes(home):
    bob = home.env.auth("bob", "customer", customer_id="c2")
    r = home.client.delete(f"/v1/footage/c1/front/{CLIP}", headers=bob)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_owner"
    analyst = home.env.auth("ana", "security_analyst")
    assert home.client.delete(f"/v1/footage/c1/front/{CLIP}", headers=analyst).status_code == 403
    assert home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=alice(home)).status_code == 200


def test_camera_zone_change_is_audited_with_who_did_it(home):
    r = home.client.put(
        "/v1/cameras/c1/back", json={"zone": "private", "label": "Bedroom"}, headers=alice(home)
    )
    assert r.status_code == 200
    updated = [e for e in events(home) if e["type"] == "camera.updated"][-1]
    assert updated["principal"] == "alice" and updated["camera_id"] == "back"
    assert updated["detail"]["zone"] == "private" and updated["detail"]["previous_zone"] == "indoor"
