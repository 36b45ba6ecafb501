"""The SQLite append path of the audit store: one driver-level transaction per batch.

Why the batch skips SQLAlchemy's execution machinery: docs/benchmarks.md.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway import migrations
from gateway.audit.chain import HEAD_SQL
from gateway.audit.events import Event, new_event
from gateway.audit.store import COLUMNS, AuditStore, EventQuery, before_commit, select_events
from gateway.audit.verify import verify_rows
from gateway.db import audit_events, create_db_engine
from gateway.errors import AuditUnavailable
from gateway.types import EventType


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = create_db_engine(url)
    migrations.migrate(engine)
    engine.dispose()
    return url


@pytest.fixture
def store(db_url: str) -> Any:
    engine = create_db_engine(db_url)
    yield AuditStore(engine)
    engine.dispose()


def events(n: int, **fields: Any) -> list[Event]:
    return [new_event(EventType.ACCESS_DECISION, request_id=f"r{i}", **fields) for i in range(n)]


def stored_seqs(store: AuditStore) -> list[int]:
    return [int(row["seq"]) for row in store.iter_rows()]


def test_the_insert_names_every_column_of_the_table() -> None:
    assert sorted(COLUMNS) == sorted(audit_events.c.keys())


def test_rows_written_by_the_driver_verify(store: AuditStore) -> None:
    store.append_batch(events(3, principal="sam", customer_id="c1", decision="allow"))
    store.append_batch(events(2, grant_id="gr_1"))
    result = verify_rows(store.iter_rows())  # also checks each indexed column against the body
    assert result.ok and result.events == 5


def test_a_batch_is_all_or_none(store: AuditStore) -> None:
    store.append_batch(events(2))
    clash = events(3)
    clash[2]["event_id"] = None  # NOT NULL refuses the third row
    with pytest.raises(AuditUnavailable):
        store.append_batch(clash)
    assert stored_seqs(store) == [1, 2]
    assert [e["seq"] for e in store.append_batch(events(1))] == [3]
    assert store.engine.pool.checkedout() == 0


def test_the_store_recovers_once_its_table_is_back(store: AuditStore) -> None:
    store.append_batch(events(1))
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    with pytest.raises(AuditUnavailable):
        store.append_batch(events(1))
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert [e["seq"] for e in store.append_batch(events(2))] == [2, 3]
    assert store.engine.pool.checkedout() == 0


def test_stores_in_two_processes_never_fork_the_chain(db_url: str) -> None:
    # Two engines stand for two processes: each batch reads the head under BEGIN IMMEDIATE.
    engines = [create_db_engine(db_url), create_db_engine(db_url)]
    stores = [AuditStore(engine) for engine in engines]
    errors: list[BaseException] = []

    def writer(store: AuditStore) -> None:
        try:
            for _ in range(15):
                store.append_batch(events(4))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (*stores, *stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert stored_seqs(stores[0]) == list(range(1, 4 * 15 * 4 + 1))
    assert verify_rows(stores[0].iter_rows()).ok
    for engine in engines:
        engine.dispose()


def test_before_commit_sees_the_sealed_batch_before_it_is_durable(store: AuditStore) -> None:
    seen: list[tuple[list[int], int]] = []

    def hook(sealed: list[Event], _bodies: list[str]) -> None:
        with store.engine.connect() as other:  # another connection: sees only what is committed
            count = other.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar()
        seen.append(([e["seq"] for e in sealed], int(count or 0)))

    with before_commit(hook):
        sealed = store.append_batch(events(3))
    store.append_batch(events(1))  # outside the block: no hook
    assert seen == [([1, 2, 3], 0)]
    assert [e["hash"] for e in sealed] == [r["hash"] for r in store.iter_rows()][:3]


def test_a_hook_that_raises_fails_the_batch(store: AuditStore) -> None:
    def hook(_sealed: list[Event], _bodies: list[str]) -> None:
        raise RuntimeError("no")

    with before_commit(hook), pytest.raises(RuntimeError):
        store.append_batch(events(2))
    assert stored_seqs(store) == []
    assert [e["seq"] for e in store.append_batch(events(1))] == [1]


# Every query the gateway makes of the audit table, by who makes it, and the index that answers
# it: revision 0008 keeps only the indexes these need (docs/benchmarks.md).
QUERIES = {
    "customer access log (api/me.py)": (
        EventQuery(
            customer_id="c1",
            types=("access.decision",),
            before_seq=900,
            limit=50,
            newest_first=True,
        ),
        "ix_audit_customer_seq",
    ),
    "its completions (api/me.py)": (
        EventQuery(
            customer_id="c1", types=("access.complete",), request_ids=("r3", "r4"), after_seq=10
        ),
        "ix_audit_customer_seq",
    ),
    "a principal's decisions (detection/activity.py)": (
        EventQuery(
            principal="p3",
            types=("access.decision",),
            since="2026-01-01T00:00:00Z",
            until="2027-01-01T00:00:00Z",
            after_seq=10,
            limit=1000,
        ),
        "ix_audit_principal_seq",
    ),
    "GET /v1/audit/events?principal=": (EventQuery(principal="p3"), "ix_audit_principal_seq"),
    "GET /v1/audit/events?customer_id=": (
        EventQuery(customer_id="c1", decision="deny"),
        "ix_audit_customer_seq",
    ),
    "GET /v1/audit/events?since=&until=": (
        EventQuery(since="2026-01-01T00:00:00Z", until="2026-06-01T00:00:00Z"),
        "ix_audit_ts",
    ),
    "GET /v1/audit/events?after_seq=": (EventQuery(after_seq=10), "INTEGER PRIMARY KEY"),
}


def query_plan(store: AuditStore, stmt: sa.Executable) -> str:
    """SQLite's EXPLAIN QUERY PLAN of a statement, its steps joined."""
    with store.engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(params)).all()
    return "; ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("name", QUERIES)
def test_every_audit_query_is_answered_from_an_index(store: AuditStore, name: str) -> None:
    for n in range(5):
        store.append_batch(
            [
                new_event(
                    EventType.ACCESS_DECISION if i % 2 else EventType.ACCESS_COMPLETE,
                    request_id=f"r{n}-{i // 2}",
                    principal=f"p{i % 7}",
                    customer_id=f"c{i % 3}",
                    decision="allow",
                )
                for i in range(200)
            ]
        )
    query, index = QUERIES[name]
    plan = query_plan(store, select_events(query))
    assert plan.startswith(f"SEARCH audit_events USING {'' if 'PRIMARY' in index else 'INDEX '}")
    assert index in plan, plan


def test_the_head_is_read_from_the_end_of_the_rowid(store: AuditStore) -> None:
    store.append_batch(events(3))
    plan = query_plan(store, sa.text(HEAD_SQL))
    # A scan in rowid order that stops at its first row: no sort, whatever the log's length.
    assert plan == "SCAN audit_events", plan
