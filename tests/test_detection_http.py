"""Detection end to end over real HTTP: the browsing replay, a normal support day, suspensions.

Uvicorn on an ephemeral port, httpx, SQLite, a file tree; the detector is the one
`build_services` wires in, with the repo's `policies/detection.toml` unless a test says so.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.pipeline import SUSPENSION_RULE
from gateway.settings import REPO_POLICY_DIR
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.legal import approve_legal
from tests.support.server import Live, make_env, start_live

# Working hours around the clock: the live tests run whenever CI does, and off_hours has its
# own tests with an injected clock (test_detection_rules.py).
ALWAYS_WORKING = """
[working_hours]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "24:00"
"""
YESTERDAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(
    days=1
)


def clip_at(minute: int) -> str:
    return (YESTERDAY + timedelta(minutes=minute)).strftime(RECORDED_AT_FORMAT) + ".mp4"


def policy_dir(root: Path, detection: str) -> Path:
    """A copy of the repo's policies with its own detection.toml."""
    target = root / "policies"
    shutil.copytree(REPO_POLICY_DIR, target)
    (target / "detection.toml").write_text(detection)
    return target


def start(tmp_path: Path, detection: str | None = None, **env: str) -> Live:
    extra = dict(env)
    if detection is not None:
        extra["FOOTGW_POLICY_DIR"] = str(policy_dir(tmp_path, detection))
    return start_live(make_env(tmp_path, extra))


@pytest.fixture
def running(tmp_path):
    made: list[Live] = []

    def make(detection: str | None = ALWAYS_WORKING, **env: str) -> Live:
        made.append(start(tmp_path, detection, **env))
        return made[-1]

    yield make
    for live in made:
        live.client.close()
        live.server.stop()


def analyst(live: Live) -> dict[str, str]:
    return live.env.auth("ana", "security_analyst")


def grant(live: Live, customer: str, grantee: str, ticket: str, **extra: object) -> str:
    body = {
        "grantee": grantee,
        "purpose": "customer_support",
        "cameras": ["*"],
        "footage_from": (YESTERDAY - timedelta(hours=2)).isoformat(),
        "footage_until": (YESTERDAY + timedelta(hours=2)).isoformat(),
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "ticket": ticket,
        **extra,
    }
    owner = live.env.auth(f"owner-{customer}", "customer", customer_id=customer)
    r = live.client.post("/v1/grants", json=body, headers=owner)
    assert r.status_code == 201, r.text
    return str(r.json()["grant_id"])


def agent(live: Live, sub: str, ticket: str) -> dict[str, str]:
    return live.env.auth(
        sub,
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": f"{ticket} follow-up"},
    )


def open_flags(live: Live, principal: str) -> list[dict]:
    r = live.client.get(
        "/v1/flags", params={"status": "open", "principal": principal}, headers=analyst(live)
    )
    assert r.status_code == 200
    return list(r.json()["flags"])


def rules_of(flags: list[dict]) -> set[str]:
    return {f["rule"] for f in flags}


def events(live: Live, **params: object) -> list[dict]:
    r = live.client.get("/v1/audit/events", params={"limit": 1000, **params}, headers=analyst(live))
    return list(r.json()["events"])


def test_browsing_replay_flags_at_5_suspends_at_10_refuses_the_11th(running):
    live = running(None)  # the shipped policies/detection.toml, unchanged
    clip = clip_at(0)
    customers = [f"cust{i:02d}" for i in range(1, 13)]
    tickets = {}
    for i, customer in enumerate(customers, 1):
        live.env.put_clip(customer, "porch", clip, f"{customer} footage".encode())
        live.env.set_zone(customer, "porch", Zone.OUTDOOR)
        tickets[customer] = f"CASE-{i}00"
        grant(live, customer, "role:support_agent", tickets[customer])
    decision_ids = []
    for number, customer in enumerate(customers, 1):
        r = live.client.get(
            f"/v1/footage/{customer}/porch/{clip}",
            headers=agent(live, "mallory", tickets[customer]),
        )
        browsing = [f for f in open_flags(live, "mallory") if f["rule"] == "customer_browsing"]
        status = live.client.get("/v1/principals/mallory", headers=analyst(live)).json()
        if number <= 10:
            assert r.status_code == 200, (number, r.text)  # the 10th is the last one served
            decision_ids.append(r.headers["x-audit-event-id"])
        assert bool(browsing) == (number >= 5), number
        assert (status["status"] == "suspended") == (number >= 10), number
        if number == 11:
            assert r.status_code == 403 and r.json()["error"]["code"] == "principal_suspended"
    [flag] = browsing
    assert flag["severity"] == "high" and flag["principal"] == "mallory"
    assert flag["event_ids"] == decision_ids  # the evidence: each view, in order
    [suspended] = events(live, type="principal.suspended")
    assert suspended["detail"]["subject"] == "mallory" and suspended["detail"]["by"] == "rule"
    assert suspended["detail"]["flag_id"] == flag["flag_id"]
    assert status["reason"].startswith("customer_browsing")
    assert flag["flag_id"] in [f["flag_id"] for f in status["open_flags"]]
    assert status["activity"]["distinct_customers_last_hour"] == 10
    # The page counts every denial its timeline lists: the 11th and 12th, refused as
    # suspended, each in the camera's real zone and naming what refused it.
    refusals = events(live, type="access.decision", principal="mallory", decision="deny")
    assert [e["reason"] for e in refusals] == ["principal_suspended"] * 2
    assert {e["detail"]["zone"] for e in refusals} == {"outdoor"}
    assert {e["detail"]["rule"] for e in refusals} == {SUSPENSION_RULE}
    assert status["activity"]["denials_last_hour"] == len(refusals)


def test_a_normal_support_day_raises_no_browsing_or_bulk_flag(running):
    live = running(None)
    clips = [clip_at(minute) for minute in range(20)]
    for clip in clips:
        live.env.put_clip("c1", "kitchen", clip, b"kitchen")
    live.env.set_zone("c1", "kitchen", Zone.INDOOR)
    grant(live, "c1", "sam", "TICKET-77")
    for clip in clips:
        r = live.client.get(
            f"/v1/footage/c1/kitchen/{clip}", headers=agent(live, "sam", "TICKET-77")
        )
        assert r.status_code == 200
    assert not rules_of(open_flags(live, "sam")) & {"customer_browsing", "bulk_viewing"}
    summary = live.client.get("/v1/principals/sam", headers=analyst(live)).json()
    assert summary["status"] == "active"
    assert summary["activity"]["views_last_hour"] == 20
    assert summary["activity"]["distinct_customers_last_hour"] == 1


LOW = (
    ALWAYS_WORKING
    + """
[rules.customer_browsing]
flag_at = 2
suspend_at = 3
[rules.repeated_denials]
flag_at = 2
suspend_at = 3
"""
)


def test_reinstated_after_an_automatic_suspension_starts_from_zero(running):
    live = running(LOW)
    clip = clip_at(0)
    for customer in ("a1", "a2", "a3", "a4"):
        live.env.put_clip(customer, "cam", clip, b"x")
        live.env.set_zone(customer, "cam", Zone.OUTDOOR)
        grant(live, customer, "sam", "T-55")
    for customer in ("a1", "a2", "a3"):
        assert (
            live.client.get(
                f"/v1/footage/{customer}/cam/{clip}", headers=agent(live, "sam", "T-55")
            ).status_code
            == 200
        )
    refused = live.client.get(f"/v1/footage/a4/cam/{clip}", headers=agent(live, "sam", "T-55"))
    assert refused.json()["error"]["code"] == "principal_suspended"
    r = live.client.post(
        "/v1/principals/sam/reinstate", json={"reason": "reviewed"}, headers=analyst(live)
    )
    assert r.status_code == 200 and r.json()["status"] == "active"
    # The old counts were forgotten: one more customer is one, not four.
    again = live.client.get(f"/v1/footage/a4/cam/{clip}", headers=agent(live, "sam", "T-55"))
    assert again.status_code == 200
    assert live.client.get("/v1/principals/sam", headers=analyst(live)).json()["status"] == (
        "active"
    )


def test_repeated_denials_suspend_and_block_every_endpoint(running):
    live = running(LOW)
    clip = clip_at(0)
    live.env.put_clip("c1", "cam", clip, b"x")
    for _ in range(3):
        r = live.client.get(f"/v1/footage/c1/cam/{clip}", headers=agent(live, "sam", "T-1"))
        assert r.json()["error"]["code"] == "no_grant"
    r = live.client.get("/v1/grants", headers=agent(live, "sam", "T-1"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "principal_suspended"
    assert rules_of(open_flags(live, "sam")) == {"repeated_denials"}


def test_manual_suspend_and_reinstate_are_audited(running):
    live = running()
    clip = clip_at(0)
    live.env.put_clip("c1", "cam", clip, b"x")
    live.env.set_zone("c1", "cam", Zone.OUTDOOR)
    grant(live, "c1", "sam", "T-9")
    r = live.client.post(
        "/v1/principals/sam/suspend", json={"reason": "laptop stolen"}, headers=analyst(live)
    )
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    refused = live.client.get(f"/v1/footage/c1/cam/{clip}", headers=agent(live, "sam", "T-9"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "principal_suspended"
    live.client.post("/v1/principals/sam/reinstate", headers=analyst(live))
    ok = live.client.get(f"/v1/footage/c1/cam/{clip}", headers=agent(live, "sam", "T-9"))
    assert ok.status_code == 200
    kinds = [
        (e["type"], e["detail"]["by"]) for e in events(live) if e["type"].startswith("principal.")
    ]
    assert kinds == [("principal.suspended", "manual"), ("principal.reinstated", "manual")]
    # Only security may suspend.
    r = live.client.post("/v1/principals/ana/suspend", headers=agent(live, "sam", "T-9"))
    assert r.status_code == 403


def test_private_zone_break_glass_and_legal_are_flagged_over_http(running):
    live = running()
    clip = clip_at(0)
    live.env.put_clip("c1", "nursery", clip, b"baby")
    live.env.set_zone("c1", "nursery", Zone.PRIVATE)
    grant(live, "c1", "sam", "T-3", include_private=True)
    assert (
        live.client.get(
            f"/v1/footage/c1/nursery/{clip}", headers=agent(live, "sam", "T-3")
        ).status_code
        == 200
    )
    lead = {
        "Authorization": f"Bearer {live.env.token('lee', 'support_lead', ttl=600)}",
        "X-Access-Purpose": "emergency",
        "X-Access-Justification": "INC-1 smoke alarm",
    }
    assert live.client.get(f"/v1/footage/c1/nursery/{clip}", headers=lead).status_code == 200
    approve_legal(live.client, live.url, live.env.auth, "lou", ["c1"], "SUBPOENA-42")
    legal = live.env.auth(
        "lou",
        "legal",
        **{"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-42"},
    )
    assert live.client.get(f"/v1/footage/c1/nursery/{clip}", headers=legal).status_code == 200
    assert rules_of(open_flags(live, "sam")) == {"private_zone_access"}
    lee = {f["rule"]: f for f in open_flags(live, "lee")}
    assert lee["break_glass"]["severity"] == "high"
    assert "legal_request" in rules_of(open_flags(live, "lou"))
