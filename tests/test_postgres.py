"""The gateway's database layer on PostgreSQL: migrations, and the audit chain under load.

Each test gets a fresh schema (tests/support/cluster.py). The chain must stay one chain with
dense `seq` whatever the interleaving of writers, and a batch must be one transaction sent in
one round trip while this process is the only writer (gateway/audit/pg_append.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.audit.verify import verify_rows
from gateway.cluster.identity import read_cluster_id
from gateway.db import audit_events, create_db_engine
from gateway.errors import AuditUnavailable
from gateway.types import EventType
from tests.support.cluster import fresh_schema, require_postgres
from tests.test_migrations import ALL_REVISIONS

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema(require_postgres()) as url:
        yield url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_db_engine(pg_url)
    migrations.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> Iterator[AuditStore]:
    store = AuditStore(engine)
    yield store
    store.close()


def events(n: int, principal: str = "p") -> list[dict]:
    return [
        new_event(EventType.ACCESS_DECISION, principal=principal, decision="deny") for _ in range(n)
    ]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar())


def test_migrate_applies_every_version_once_and_serve_check_passes(pg_url):
    engine = create_db_engine(pg_url)
    try:
        with pytest.raises(migrations.SchemaOutOfDate, match="footage-gateway migrate"):
            migrations.check(engine)
        assert migrations.migrate(engine) == ALL_REVISIONS
        assert migrations.migrate(engine) == []
        migrations.check(engine)
        cluster_id = read_cluster_id(engine)
        assert len(cluster_id) == 32
        assert read_cluster_id(engine) == cluster_id  # one id per database, not per call
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_once(pg_url):
    engines = [create_db_engine(pg_url) for _ in range(4)]
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            applied.append(migrations.migrate(engine))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert not errors
    assert sorted(applied, key=len) == [[], [], [], ALL_REVISIONS]


def test_a_lone_writer_commits_each_batch_in_one_round_trip(store, engine):
    for size in (1, 5, 3):
        store.append_batch(events(size))
    assert store.pg is not None
    # The first batch reads the head under the lock; after that this writer knows the head.
    assert (store.pg.locked_commits, store.pg.fast_commits, store.pg.collisions) == (1, 2, 0)
    result = verify_rows(store.iter_rows())
    assert result.ok and result.events == 9


def test_a_stale_head_never_forks_the_chain(engine, pg_url):
    first, second = AuditStore(engine), AuditStore(create_db_engine(pg_url))
    try:
        first.append_batch(events(2, "a"))
        second.append_batch(events(3, "b"))  # first's remembered head is now stale
        sealed = first.append_batch(events(2, "a"))
        assert [e["seq"] for e in sealed] == [6, 7]
        assert first.pg is not None and first.pg.collisions == 1
        result = verify_rows(first.iter_rows())
        assert result.ok and result.events == 7
    finally:
        first.close()
        second.close()
        second.engine.dispose()


def test_concurrent_writers_on_three_engines_keep_one_dense_chain(engine, pg_url):
    stores = [AuditStore(create_db_engine(pg_url)) for _ in range(3)]
    errors: list[BaseException] = []

    def write(store: AuditStore, name: str) -> None:
        try:
            for i in range(60):
                store.append_batch(events(1 + i % 4, name))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        result = verify_rows(stores[0].iter_rows())
        assert result.ok and result.events == 3 * sum(1 + i % 4 for i in range(60))
    finally:
        for store in stores:
            store.close()
            store.engine.dispose()


def test_a_failed_batch_lands_nothing_and_the_writer_carries_on(store, engine):
    store.append_batch(events(1))
    refused = dict(events(1)[0], event_id=None)  # NOT NULL refuses it, after two good rows
    with pytest.raises(AuditUnavailable):
        store.append_batch([*events(2), refused])
    assert count(engine) == 1
    store.append_batch(events(2))
    result = verify_rows(store.iter_rows())
    assert result.ok and result.events == 3


def test_a_dropped_connection_fails_one_batch_then_reconnects(store, engine):
    store.append_batch(events(1))
    assert store.pg is not None
    backend = store.pg._connection().info.backend_pid
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    with pytest.raises(AuditUnavailable):
        store.append_batch(events(1))
    store.append_batch(events(2))
    result = verify_rows(store.iter_rows())
    assert result.ok and result.events == 3


def test_group_commit_puts_concurrent_appends_in_shared_transactions(store, engine):
    async def main() -> None:
        log = AuditLog(store)

        async def writer(i: int) -> None:
            for _ in range(25):
                await log.append(new_event(EventType.ACCESS_DECISION, principal=f"w{i}"))

        await asyncio.gather(*(writer(i) for i in range(32)))
        await log.close()

    asyncio.run(main())
    assert store.pg is not None
    transactions = store.pg.fast_commits + store.pg.locked_commits
    assert count(engine) == 800
    assert transactions <= 800 / 4, transactions  # 32 writers: batches, not one commit each
    result = verify_rows(store.iter_rows())
    assert result.ok and result.events == 800
