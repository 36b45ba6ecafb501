"""A change and its audit event commit together (gateway/audit/atomic.py, docs/contract.md §7).

The fault is real and in the database: a trigger that refuses every INSERT into audit_events,
on SQLite and on PostgreSQL, so whichever path writes the event meets it. With it in place each
administrative change must answer 503 `audit_unavailable` and leave the state exactly as it
was, with no event; without it, the change and its event both land and the chain verifies.
A clip deletion cannot share a transaction with the storage: it is recorded first, and the
`footage.deleted` event is written only once the storage says the clip is gone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.detection.flags import NewFlag
from gateway.types import Severity, Zone
from tests.support.cluster import EITHER_DATABASE, database_settings
from tests.support.faults import services_of, verify_chain
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = b"FRONT-DOOR-BYTES" * 1024

SQLITE_FAULT = (
    "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'injected audit fault'); END"
)
PG_FAULT = (
    "CREATE FUNCTION audit_fault() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'injected audit fault'; END $$",
    "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_fault()",
)


class Gateway:
    """A live gateway with a switch that makes its audit store refuse every append."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.client = live.client
        self.engine = services_of(live).engine

    def break_audit(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                for statement in PG_FAULT:
                    conn.execute(sa.text(statement))
            else:
                conn.execute(sa.text(SQLITE_FAULT))

    def mend_audit(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("DROP TRIGGER audit_fault ON audit_events"))
                conn.execute(sa.text("DROP FUNCTION audit_fault()"))
            else:
                conn.execute(sa.text("DROP TRIGGER audit_fault"))

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, read straight from the table (nothing hides a row)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT body FROM audit_events ORDER BY seq")).all()
        return [json.loads(row.body) for row in rows]

    def owner(self) -> dict[str, str]:
        return self.live.env.auth("alice", "customer", customer_id="c1")

    def analyst(self) -> dict[str, str]:
        return self.live.env.auth("ana", "security_analyst")


@pytest.fixture(params=EITHER_DATABASE)
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    with database_settings(request.param) as database:
        env = make_env(tmp_path, database)
        env.set_zone("c1", "front", Zone.OUTDOOR)
        env.put_clip("c1", "front", CLIP, DATA)
        with start_live(env) as live:
            yield Gateway(live)


def grant_body() -> dict[str, Any]:
    return {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "ticket": "TICKET-7",
    }


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert r.json()["error"]["code"] == "audit_unavailable"
    assert "x-audit-event-id" not in r.headers


def grants_of(gw: Gateway) -> list[dict[str, Any]]:
    r = gw.client.get("/v1/grants", headers=gw.owner())
    assert r.status_code == 200
    grants: list[dict[str, Any]] = r.json()["grants"]
    return grants


def zones_of(gw: Gateway) -> dict[str, str]:
    r = gw.client.get("/v1/cameras/c1", headers=gw.owner())
    return {c["camera_id"]: c["zone"] for c in r.json()["cameras"]}


def status_of(gw: Gateway, sub: str) -> str:
    r = gw.client.get(f"/v1/principals/{sub}", headers=gw.analyst())
    assert r.status_code == 200
    return str(r.json()["status"])


def open_flag(gw: Gateway) -> str:
    new = NewFlag(
        rule="legal_access",
        severity=Severity.MEDIUM,
        principal="sam",
        window_key="w1",
        window=timedelta(minutes=10),
        event_id="ev-1",
        detail={},
    )
    flags = services_of(gw.live).detector.flags
    flag, created = flags.raise_or_extend(new, datetime.now(UTC), lambda: [])
    assert created
    return flag.flag_id


# --- with the audit append failing, every change changes nothing -----------------------------


def test_a_grant_is_not_created_without_its_event(gw: Gateway) -> None:
    before = gw.events()
    gw.break_audit()
    assert_refused(gw.client.post("/v1/grants", json=grant_body(), headers=gw.owner()))
    assert grants_of(gw) == []
    assert gw.events() == before


def test_a_grant_is_not_revoked_without_its_event(gw: Gateway) -> None:
    created = gw.client.post("/v1/grants", json=grant_body(), headers=gw.owner()).json()
    before = gw.events()
    gw.break_audit()
    assert_refused(gw.client.delete(f"/v1/grants/{created['grant_id']}", headers=gw.owner()))
    [grant] = grants_of(gw)
    assert grant["state"] == "active" and grant["revoked_at"] is None
    assert gw.events() == before


def test_a_zone_is_not_changed_without_its_event(gw: Gateway) -> None:
    gw.live.env.put_clip("c1", "garden", CLIP, DATA)  # known by its footage, never zoned (§4)
    before = gw.events()
    gw.break_audit()
    r = gw.client.put("/v1/cameras/c1/front", json={"zone": "private"}, headers=gw.owner())
    assert_refused(r)
    r = gw.client.put("/v1/cameras/c1/garden", json={"zone": "outdoor"}, headers=gw.owner())
    assert_refused(r)  # a camera nobody classified stays unclassified (private)
    assert zones_of(gw) == {"front": "outdoor", "garden": "private"}
    assert gw.events() == before


def test_a_clip_is_not_deleted_without_its_event(gw: Gateway) -> None:
    before = gw.events()
    gw.break_audit()
    assert_refused(gw.client.delete(PATH, headers=gw.owner()))
    assert gw.events() == before
    gw.mend_audit()
    kept = gw.client.get(PATH, headers=gw.owner())
    assert kept.status_code == 200 and kept.content == DATA


def test_a_suspension_and_a_reinstatement_do_not_stand_without_their_events(gw: Gateway) -> None:
    before = gw.events()
    gw.break_audit()
    assert_refused(gw.client.post("/v1/principals/sam/suspend", headers=gw.analyst()))
    assert status_of(gw, "sam") == "active"
    assert gw.events() == before
    gw.mend_audit()
    assert gw.client.post("/v1/principals/sam/suspend", headers=gw.analyst()).status_code == 200
    before = gw.events()
    gw.break_audit()
    assert_refused(gw.client.post("/v1/principals/sam/reinstate", headers=gw.analyst()))
    assert status_of(gw, "sam") == "suspended"
    assert gw.events() == before


def test_a_flag_is_not_resolved_without_its_event(gw: Gateway) -> None:
    flag_id = open_flag(gw)
    before = gw.events()
    gw.break_audit()
    r = gw.client.post(
        f"/v1/flags/{flag_id}/resolve", json={"resolution": "legit"}, headers=gw.analyst()
    )
    assert_refused(r)
    flags = gw.client.get("/v1/flags?status=open", headers=gw.analyst()).json()["flags"]
    assert [f["flag_id"] for f in flags] == [flag_id]
    assert gw.events() == before


# --- and without the fault, each change and its event land together --------------------------


def test_each_change_lands_with_its_event_and_the_chain_verifies(gw: Gateway) -> None:
    flag_id = open_flag(gw)
    created = gw.client.post("/v1/grants", json=grant_body(), headers=gw.owner())
    revoked = gw.client.delete(f"/v1/grants/{created.json()['grant_id']}", headers=gw.owner())
    zoned = gw.client.put("/v1/cameras/c1/front", json={"zone": "indoor"}, headers=gw.owner())
    suspended = gw.client.post("/v1/principals/sam/suspend", headers=gw.analyst())
    again = gw.client.post("/v1/principals/sam/suspend", headers=gw.analyst())
    reinstated = gw.client.post("/v1/principals/sam/reinstate", headers=gw.analyst())
    resolved = gw.client.post(
        f"/v1/flags/{flag_id}/resolve", json={"resolution": "legit"}, headers=gw.analyst()
    )
    deleted = gw.client.delete(PATH, headers=gw.owner())
    answers = (created, revoked, zoned, suspended, again, reinstated, resolved, deleted)
    assert [r.status_code for r in answers] == [201, 200, 200, 200, 200, 200, 200, 204]
    by_id = {e["event_id"]: e for e in gw.events()}
    for r, kind in (
        (created, "grant.created"),
        (revoked, "grant.revoked"),
        (resolved, "flag.resolved"),
        (deleted, "footage.deleted"),
    ):
        assert by_id[r.headers["x-audit-event-id"]]["type"] == kind
    types = [e["type"] for e in by_id.values()]
    assert types.count("principal.suspended") == 1  # suspending twice is one suspension
    assert types.count("principal.reinstated") == 1
    [zone] = [e for e in by_id.values() if e["type"] == "camera.updated"]
    assert zone["detail"]["previous_zone"] == "outdoor" and zone["detail"]["zone"] == "indoor"
    assert zones_of(gw) == {"front": "indoor"}
    assert grants_of(gw)[0]["state"] == "revoked"
    assert status_of(gw, "sam") == "active"
    assert verify_chain(gw.live.env.settings.database_url).ok


def test_a_deletion_is_recorded_before_and_claimed_only_after(gw: Gateway) -> None:
    deleted = gw.client.delete(PATH, headers=gw.owner())
    missing = gw.client.delete(PATH, headers=gw.owner())  # the storage refuses: not found
    assert deleted.status_code == 204 and missing.status_code == 404
    mine = [e for e in gw.events() if e["type"].startswith("footage.delete")]
    assert [e["type"] for e in mine] == [
        "footage.delete_requested",
        "footage.deleted",
        "footage.delete_requested",
        "footage.delete_failed",
    ]
    assert mine[1]["event_id"] == deleted.headers["x-audit-event-id"]
    assert mine[1]["detail"]["requested_event_id"] == mine[0]["event_id"]
    assert mine[3]["detail"]["requested_event_id"] == mine[2]["event_id"]
    assert mine[3]["status"] == 404 and mine[3]["reason"] == "not_found"
    assert all(e["clip_id"] == CLIP and e["principal"] == "alice" for e in mine)


def test_a_refused_change_rolls_back_alone_and_writes_nothing(gw: Gateway) -> None:
    flag_id = open_flag(gw)
    first = gw.client.post(
        f"/v1/flags/{flag_id}/resolve", json={"resolution": "legit"}, headers=gw.analyst()
    )
    before = gw.events()
    second = gw.client.post(
        f"/v1/flags/{flag_id}/resolve", json={"resolution": "again"}, headers=gw.analyst()
    )
    assert first.status_code == 200 and second.status_code == 400
    assert gw.events() == before
    stored = gw.client.get("/v1/flags?status=resolved", headers=gw.analyst()).json()["flags"]
    assert stored[0]["resolution"] == "legit"


# --- under load: admin transactions and group-commit appends share one chain ------------------


def test_concurrent_changes_and_views_keep_one_chain_and_every_change_has_its_event(
    gw: Gateway,
) -> None:
    for i in range(0, 40, 4):  # the cameras zoned below are known by their footage (§4)
        gw.live.env.put_clip("c1", f"cam{i}", CLIP, DATA)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.live.url, timeout=60) as client:
            calls = []
            for i in range(40):
                if i % 2:
                    calls.append(client.get(PATH, headers=gw.owner()))
                elif i % 4:
                    calls.append(client.post("/v1/grants", json=grant_body(), headers=gw.owner()))
                else:
                    zone = {"zone": ("indoor", "outdoor")[i % 8 == 0]}
                    calls.append(
                        client.put(f"/v1/cameras/c1/cam{i}", json=zone, headers=gw.owner())
                    )
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(burst())
    assert sorted({r.status_code for r in answers}) == [200, 201], [r.text for r in answers]
    events = gw.events()
    granted = {e["grant_id"] for e in events if e["type"] == "grant.created"}
    assert granted == {g["grant_id"] for g in grants_of(gw)} and len(granted) == 10
    zoned = {e["camera_id"] for e in events if e["type"] == "camera.updated"}
    assert zoned == set(zones_of(gw)) - {"front"} and len(zoned) == 10
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert verify_chain(gw.live.env.settings.database_url).ok
