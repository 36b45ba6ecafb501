"""The audit event store on SQLAlchemy Core: append a batch under the chain lock, query, iterate.

A batch is one transaction: read the head, seal each event onto it, insert, commit. On SQLite
(WAL, synchronous=FULL) BEGIN IMMEDIATE makes the read-then-append atomic. On PostgreSQL an
advisory lock and the primary key on `seq` do, across replicas, so `seq` stays dense and the
chain never forks; pg_append.py sends a batch in one round trip.

On SQLite a batch goes straight to the driver on a pooled connection (docs/benchmarks.md):
SQLAlchemy's execution machinery (events, a compiled INSERT, a dict per row) cost more Python than
the sealing itself, and every Python instruction in the writer thread competes with the event loop
for the GIL. Queries and everything else stay on SQLAlchemy Core.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection

from gateway.audit.chain import HEAD_SQL, Head, head_from_row, read_head, seal_batch
from gateway.audit.companions import companions
from gateway.audit.events import Event, body_of, canonical_json
from gateway.audit.verify import INDEXED
from gateway.db import audit_events, sqlite_write_lock
from gateway.errors import AuditUnavailable

if TYPE_CHECKING:
    from gateway.audit.pg_append import PgAppender

MAX_PAGE = 1000

# The audit_events columns in the order _values() gives them: the chain's place, the columns
# the queries index (verify checks they agree with the body), then the body and its hashes.
COLUMNS = ("seq", *INDEXED, "body", "prev_hash", "hash")
_INSERT_SQL = (
    f"INSERT INTO {audit_events.name} ({', '.join(COLUMNS)}) "  # noqa: S608 (names are ours)
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)

SealedHook = Callable[[list[Event], list[str]], None]
# Set by before_commit() for the append_batch calls made inside it (this context only): a
# contextvar rather than a parameter, so a wrapped or stubbed append_batch(events) still works.
_before_commit: ContextVar[SealedHook | None] = ContextVar("audit_before_commit", default=None)


@contextmanager
def before_commit(hook: SealedHook) -> Iterator[None]:
    """Within this block, append_batch on SQLite calls hook(sealed, bodies) just before COMMIT.

    bodies are the events' canonical JSON without their hashes, as stored (the writer renders the
    batch's log lines from them). Nothing is durable yet when it runs and the COMMIT may still
    fail: the hook must not publish anything. It must not raise either: that fails the batch.
    """
    token = _before_commit.set(hook)
    try:
        yield
    finally:
        _before_commit.reset(token)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The contract's filters on GET /v1/audit/events (and the customer's access log)."""

    principal: str | None = None
    customer_id: str | None = None
    decision: str | None = None
    types: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    limit: int = 100
    newest_first: bool = False


class AuditStore:
    """Append-only access to the audit_events table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # PostgreSQL: one round trip per batch over a held connection (see pg_append.py).
        self.pg = _pg_appender(engine) if engine.dialect.name == "postgresql" else None

    def append_batch(self, events: Sequence[Event]) -> list[Event]:
        """Seal and durably commit events in order; all or none. Raises AuditUnavailable."""
        if self.pg is not None:
            return self.pg.append(events)
        # The only other database settings accept is SQLite (FOOTGW_DATABASE_URL).
        return self._append_sqlite(events)

    def _append_sqlite(self, events: Sequence[Event]) -> list[Event]:
        """append_batch on the driver: one pooled connection, one transaction, one executemany.

        Checked out per batch, not held, so the pool's connect and checkout events (the
        durability pragmas, a test's page cap) apply as on every other connection. On any
        failure the connection is invalidated: the pool opens a fresh one for the next batch,
        so the log recovers by itself once the database does (a renamed table, a full disk).
        """
        try:
            pooled = self.engine.raw_connection()
        except SQLAlchemyError as exc:
            raise AuditUnavailable("The audit log cannot be written.") from exc
        try:
            with sqlite_write_lock(self.engine):  # after this machine's other writers let go
                sealed = _commit_sqlite(_driver(pooled), events)
        except BaseException as exc:
            _discard(pooled)
            if isinstance(exc, sqlite3.Error):
                raise AuditUnavailable("The audit log cannot be written.") from exc
            raise
        pooled.close()
        return sealed

    def close(self) -> None:
        """Release the connection the PostgreSQL writer holds between batches."""
        if self.pg is not None:
            self.pg.close()

    def head(self) -> Head:
        """The last event's seq and hash (0 and the genesis hash for an empty log)."""
        with self.engine.connect() as conn:
            return read_head(conn)

    def query(self, q: EventQuery) -> list[Event]:
        """Events matching every given filter, by seq (ascending unless newest_first)."""
        with self.engine.connect() as conn:
            return [_event(row.body, row.hash) for row in conn.execute(select_events(q))]

    def iter_rows(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every stored row in seq order, as the raw columns (what verify reads)."""
        after = 0
        while True:
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        sa.select(audit_events)
                        .where(audit_events.c.seq > after)
                        .order_by(audit_events.c.seq)
                        .limit(batch)
                    )
                    .mappings()
                    .all()
                )
            if not rows:
                return
            yield from (dict(r) for r in rows)
            after = int(rows[-1]["seq"])

    def iter_events(self) -> Iterator[Event]:
        """Every event in seq order (audit export)."""
        for row in self.iter_rows():
            yield _event(row["body"], row["hash"])


def select_events(q: EventQuery) -> sa.Select[tuple[str, str]]:
    """The statement AuditStore.query runs (tests/test_audit_store.py reads its query plans)."""
    stmt = sa.select(audit_events.c.body, audit_events.c.hash).where(*_conditions(q))
    order = audit_events.c.seq.desc() if q.newest_first else audit_events.c.seq.asc()
    return stmt.order_by(order).limit(max(1, min(q.limit, MAX_PAGE)))


def _pg_appender(engine: Engine) -> PgAppender:
    # Imported here: psycopg would add to a SQLite deployment's resident memory for nothing
    # (docs/benchmarks.md).
    from gateway.audit.pg_append import PgAppender

    return PgAppender(engine, row_of)


def _commit_sqlite(db: sqlite3.Connection, events: Sequence[Event]) -> list[Event]:
    """BEGIN IMMEDIATE, read the head, seal, insert, COMMIT (the driver is in autocommit mode).

    BEGIN IMMEDIATE takes the write lock before the head is read, so two processes can never
    seal onto the same head; COMMIT returns once synchronous=FULL has made the batch durable.
    """
    db.execute("BEGIN IMMEDIATE")
    head = head_from_row(db.execute(HEAD_SQL).fetchone())
    sealed, bodies = seal_batch(events, head)
    db.executemany(_INSERT_SQL, map(_values, sealed, bodies))
    for row in companions():
        db.execute(row.sql("?"), tuple(row.values.values()))
    hook = _before_commit.get()
    if hook is not None:
        hook(sealed, bodies)
    db.execute("COMMIT")
    return sealed


def _discard(pooled: PoolProxiedConnection) -> None:
    """Roll back whatever the failed batch left open and drop the connection from the pool."""
    with suppress(Exception):  # the connection may be past saving: dropping it is the point
        _driver(pooled).execute("ROLLBACK")
    pooled.invalidate()
    pooled.close()


def _driver(pooled: PoolProxiedConnection) -> sqlite3.Connection:
    """The pooled connection's sqlite3 connection (pysqlite: SQLAlchemy's SQLite driver)."""
    db = pooled.driver_connection
    if not isinstance(db, sqlite3.Connection):
        raise TypeError(f"expected a sqlite3 connection, got {type(db).__name__}")
    return db


def row_of(event: Event, body: str | None = None) -> dict[str, Any]:
    """One row by column name (SQLAlchemy, the PostgreSQL appender, audit/atomic.py)."""
    return dict(zip(COLUMNS, _values(event, body), strict=True))


def _values(event: Event, body: str | None = None) -> tuple[Any, ...]:
    """One row in COLUMNS order (the driver-level INSERT); body is made if not given."""
    if body is None:
        body = canonical_json(body_of(event))
    return (event["seq"], *map(event.get, INDEXED), body, event["prev_hash"], event["hash"])


def _event(body: str, hash_: str) -> Event:
    event: Event = json.loads(body)
    event["hash"] = hash_
    return event


def _conditions(q: EventQuery) -> list[sa.ColumnElement[bool]]:
    c = audit_events.c
    conds: list[sa.ColumnElement[bool]] = []
    if q.principal is not None:
        conds.append(c.principal == q.principal)
    if q.customer_id is not None:
        conds.append(c.customer_id == q.customer_id)
    if q.decision is not None:
        conds.append(c.decision == q.decision)
    if q.types:
        conds.append(c.type.in_(q.types))
    if q.request_ids:
        conds.append(c.request_id.in_(q.request_ids))
    if q.since is not None:
        conds.append(c.ts >= q.since)
    if q.until is not None:
        conds.append(c.ts < q.until)
    if q.after_seq is not None:
        conds.append(c.seq > q.after_seq)
    if q.before_seq is not None:
        conds.append(c.seq < q.before_seq)
    return conds
