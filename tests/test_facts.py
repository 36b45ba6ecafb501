"""gateway/facts.py: the per-request reads, on the loop (SQLite) or in a thread, always fresh."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from gateway import migrations
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.facts import Facts, FactsReader
from gateway.grants import Grant, GrantStore
from gateway.principals import PrincipalStore
from gateway.types import CameraRef, Principal, PrincipalState, Zone

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CAMERA = CameraRef("c1", "front")
AGENT = Principal("sam", frozenset({"support_agent"}), expires_at=NOW.timestamp() + 600)
CUSTOMER = Principal("alice", frozenset({"customer"}), customer_id="c1")


def make_grant(grant_id: str, grantee: str = "sam", customer_id: str = "c1", **changes) -> Grant:
    base = Grant(
        grant_id=grant_id,
        customer_id=customer_id,
        grantee=grantee,
        purpose="customer_support",
        cameras=("front",),
        footage_from=NOW - timedelta(days=1),
        footage_until=NOW,
        expires_at=NOW + timedelta(hours=4),
        ticket="T-1",
        include_private=False,
        created_at=NOW - timedelta(minutes=5),
        created_by="alice",
        revoked_at=None,
        revoked_by=None,
    )
    return replace(base, **changes)


class World:
    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        migrations.migrate(self.engine)
        self.principals = PrincipalStore(self.engine)
        self.cameras = CameraStore(self.engine)
        self.grants = GrantStore(self.engine)
        self.reader = FactsReader.for_engine(
            self.engine, self.principals, self.cameras, self.grants
        )
        self.threaded = FactsReader(self.principals, self.cameras, self.grants)

    def read(self, principal: Principal = AGENT, reader: FactsReader | None = None) -> Facts:
        return asyncio.run((reader or self.reader).read(principal, CAMERA, NOW))

    def close(self) -> None:
        self.reader.close()
        self.engine.dispose()


@pytest.fixture
def world(tmp_path: Path):
    made = World(f"sqlite:///{tmp_path / 'facts.db'}")
    yield made
    made.close()


def test_a_file_database_is_read_on_the_loop_and_postgres_or_memory_never() -> None:
    memory = create_db_engine("sqlite:///:memory:")
    migrations.migrate(memory)
    stores = (PrincipalStore(memory), CameraStore(memory), GrantStore(memory))
    assert FactsReader.for_engine(memory, *stores)._inline is None
    postgres = sa.create_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connected
    assert FactsReader.for_engine(postgres, *stores)._inline is None


def test_inline_and_threaded_reads_agree(world: World) -> None:
    world.cameras.set(CAMERA, Zone.INDOOR, "hall", "alice", NOW)
    wanted = [
        make_grant("gr_sam"),
        make_grant("gr_role", grantee="role:support_agent"),
    ]
    unwanted = [
        make_grant("gr_other_customer", customer_id="c2"),
        make_grant("gr_other_agent", grantee="kim"),
        make_grant("gr_expired", expires_at=NOW - timedelta(seconds=1)),
        make_grant("gr_revoked"),
        make_grant("gr_other_role", grantee="role:support_lead"),
    ]
    for g in wanted + unwanted:
        world.grants.create(g)
    world.grants.revoke("gr_revoked", "alice", NOW - timedelta(minutes=1))
    inline, threaded = world.read(), world.read(reader=world.threaded)
    assert inline == threaded
    assert not inline.suspended and inline.zone == Zone.INDOOR
    assert sorted(g.grant_id for g in inline.grants) == ["gr_role", "gr_sam"]
    assert {g.grant_id: g for g in inline.grants}["gr_sam"] == wanted[0]  # every field back


def test_unknown_camera_is_private_and_customers_get_no_grants(world: World) -> None:
    world.grants.create(make_grant("gr_sam", grantee="alice"))
    facts = world.read(CUSTOMER)
    assert facts == Facts(False, Zone.PRIVATE, [])  # a customer is never a grantee here


def test_every_change_counts_from_the_next_read(world: World) -> None:
    world.grants.create(make_grant("gr_sam"))
    assert [g.grant_id for g in world.read().grants] == ["gr_sam"]
    world.grants.revoke("gr_sam", "alice", NOW)
    assert world.read().grants == []
    world.cameras.set(CAMERA, Zone.OUTDOOR, "", "alice", NOW)
    assert world.read().zone == Zone.OUTDOOR
    world.principals.set_status("sam", PrincipalState.SUSPENDED, "sweep", "analyst", NOW)
    # Suspended: no grants, and the camera's real zone, for the denial's event to record
    assert world.read() == Facts(True, Zone.OUTDOOR, [])
    assert world.read(reader=world.threaded) == Facts(True, Zone.OUTDOOR, [])


def test_the_loop_connection_cannot_write(world: World) -> None:
    assert world.reader._inline is not None
    with pytest.raises(Exception, match=r"readonly|read-only|attempt to write"):
        world.reader._inline._db.execute("DELETE FROM grants")


def test_a_failing_inline_read_falls_back_to_the_thread_which_reports_it(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE principals RENAME TO principals_gone"))
    with capture_logs() as logs, pytest.raises(OperationalError):
        world.read()
    assert [e["event"] for e in logs] == ["inline_read_failed"]
    with world.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE principals_gone RENAME TO principals"))
    with capture_logs() as logs:
        assert not world.read().suspended
    assert logs == []  # back on the loop, nothing to report


def test_status_alone_asks_as_read_does_on_both_paths(world: World) -> None:
    """Administrative routes ask `status`; footage asks `read`: one answer, from the next read."""

    def suspended(reader: FactsReader) -> tuple[bool, bool]:
        alone = asyncio.run(reader.status("sam")).suspended
        return alone, world.read(reader=reader).suspended

    assert suspended(world.reader) == suspended(world.threaded) == (False, False)
    world.principals.set_status("sam", PrincipalState.SUSPENDED, "sweep", "analyst", NOW)
    assert suspended(world.reader) == suspended(world.threaded) == (True, True)
    assert asyncio.run(world.reader.status("sam")) == world.principals.status("sam")


def test_a_failing_inline_status_falls_back_to_the_thread_which_reports_it(world: World) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE principals RENAME TO principals_gone"))
    with capture_logs() as logs, pytest.raises(OperationalError):
        asyncio.run(world.reader.status("sam"))
    assert [e["event"] for e in logs] == ["inline_read_failed"]
