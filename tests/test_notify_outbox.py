"""The outbox table on SQLite and PostgreSQL: a notification commits with its event or not at
all, "once per key" holds without a read, and claims are exclusive until their lease lapses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.audit.atomic import commit_with_event
from gateway.audit.companions import with_companions
from gateway.audit.events import new_event
from gateway.audit.store import AuditStore
from gateway.db import audit_events, create_db_engine, notifications
from gateway.errors import AuditUnavailable, BadRequest
from gateway.notify.outbox import Destination, OutboxStore, companion, notify
from gateway.notify.worker import backoff_delay
from gateway.types import EventType
from tests.support.cluster import EITHER_DATABASE, database_settings

LEASE = timedelta(seconds=30)


@pytest.fixture(params=EITHER_DATABASE)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_settings(request.param) as settings:
        url = settings.get("FOOTGW_DATABASE_URL", f"sqlite:///{tmp_path / 'gateway.db'}")
        made = create_db_engine(url)
        migrations.migrate(made)
        try:
            yield made
        finally:
            made.dispose()


def count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def event(n: int = 0) -> Any:
    return new_event(EventType.GRANT_CREATED, principal="test", detail={"n": n})


def test_notify_commits_with_its_event(engine: Engine) -> None:
    def change(conn: Any) -> str:
        notify(conn, "c1", "test.kind", {"a": 1})
        return "done"

    commit_with_event(engine, change, lambda _: event(), lock_timeout=5)
    assert count(engine, notifications) == 1 and count(engine, audit_events) == 1


def test_a_refused_change_leaves_no_notification(engine: Engine) -> None:
    def change(conn: Any) -> str:
        notify(conn, "c1", "test.kind", {"a": 1})
        raise BadRequest("refused after the notification was written")

    with pytest.raises(BadRequest):
        commit_with_event(engine, change, lambda _: event(), lock_timeout=5)
    assert count(engine, notifications) == 0 and count(engine, audit_events) == 0


def test_companions_land_with_their_batch_or_not_at_all(engine: Engine) -> None:
    store = AuditStore(engine)
    try:
        good = companion(Destination.CUSTOMER, "c1", "test.kind", {"n": 1})
        with with_companions([good]):
            store.append_batch([event(1)])
        assert count(engine, notifications) == 1 and count(engine, audit_events) == 1
        # A companion the table refuses (no kind) fails the whole batch: no event, no row.
        bad = companion(Destination.CUSTOMER, "c1", "test.kind", {"n": 2})
        broken = type(bad)(bad.table, {**bad.values, "kind": None})
        with pytest.raises(AuditUnavailable), with_companions([good, broken]):
            store.append_batch([event(2)])
        assert count(engine, notifications) == 1 and count(engine, audit_events) == 1
        # And the log carries on afterwards.
        store.append_batch([event(3)])
        assert count(engine, audit_events) == 2
    finally:
        store.close()


def test_a_dedupe_key_is_written_once_and_its_batch_still_commits(engine: Engine) -> None:
    store = AuditStore(engine)
    try:
        for n in range(3):
            row = companion(Destination.CUSTOMER, "c1", "grant.first_use", {}, dedupe_key="k:1")
            with with_companions([row]):
                store.append_batch([event(n)])
    finally:
        store.close()
    assert count(engine, notifications) == 1 and count(engine, audit_events) == 3


def queue(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        for i in range(n):
            notify(conn, "c1", "test.kind", {"i": i})


def test_claims_are_exclusive_until_the_lease_lapses(engine: Engine) -> None:
    queue(engine, 5)
    outbox = OutboxStore(engine)
    now = datetime.now(UTC) + timedelta(seconds=1)
    first = outbox.claim("a", now, LEASE, 3, {"customer"})
    second = outbox.claim("b", now, LEASE, 10, {"customer"})
    assert len(first) == 3 and len(second) == 2
    assert not {p.id for p in first} & {p.id for p in second}
    assert outbox.claim("c", now, LEASE, 10, {"customer"}) == []
    # Only the holder settles a row; after the lease anyone may claim it again.
    with engine.begin() as conn:
        assert not outbox.mark_delivered(conn, first[0], "b", now)
        assert outbox.mark_delivered(conn, first[0], "a", now)
    later = now + LEASE + timedelta(seconds=1)
    retaken = outbox.claim("c", later, LEASE, 10, {"customer"})
    assert {p.id for p in retaken} == {p.id for p in first[1:] + second}
    assert outbox.backlog()["customer"].count == 4


def test_rows_for_a_destination_without_a_webhook_are_settled_unsent(engine: Engine) -> None:
    queue(engine, 2)
    outbox = OutboxStore(engine)
    assert outbox.settle_unsendable({"customer"}, datetime.now(UTC)) == 2
    assert outbox.backlog()["customer"].count == 0
    assert outbox.claim("a", datetime.now(UTC), LEASE, 10, {"customer"}) == []
    [listed] = outbox.for_customer("c1", None, 1)[:1]
    assert listed["state"] == "not_sent"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    assert backoff_delay(1, 2.0, 100.0, rand=lambda: 0.0) == 1.0
    assert backoff_delay(1, 2.0, 100.0, rand=lambda: 1.0) == 2.0
    assert backoff_delay(4, 2.0, 100.0, rand=lambda: 1.0) == 16.0
    assert backoff_delay(40, 2.0, 100.0, rand=lambda: 1.0) == 100.0
    assert 50.0 <= backoff_delay(1000, 2.0, 100.0) <= 100.0
