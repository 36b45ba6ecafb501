"""Audit appends on PostgreSQL: one transaction and one round trip per batch (psycopg pipeline).

Group commit (audit/log.py) already puts every event that waited during a commit into the next
batch; this module makes each batch cheap. The writer remembers the head it last committed.
While it is the only writer, a batch is sealed on that head and BEGIN, the chain's advisory
lock, the INSERTs and COMMIT leave in one pipeline sync: one round trip, one WAL flush.

Another replica may have appended since. Then the first INSERT hits the primary key on `seq`,
the transaction aborts, and nothing of the batch lands: a stale head can never fork the chain
or leave a gap. The writer falls back to the locked path (lock and read the head: one round
trip; seal, insert, commit: a second) and stays on it for a moment, since replicas that
interleave would otherwise keep colliding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy.engine import Engine

from gateway.audit.chain import HEAD_SQL, Head, head_from_row, head_of, seal_batch
from gateway.audit.companions import companions
from gateway.audit.events import Event
from gateway.db import AUDIT_LOCK_KEY, audit_events
from gateway.errors import AuditUnavailable

RowOf = Callable[[Event, str], dict[str, Any]]  # a sealed event and its canonical JSON

CONTENDED_SECONDS = 1.0  # after a collision, lock first for this long
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"


class PgAppender:
    """Appends sealed batches over one dedicated connection; call close() when done."""

    def __init__(self, engine: Engine, row_of: RowOf) -> None:
        self.engine = engine
        self.row_of = row_of
        self._columns = [c.name for c in audit_events.columns]
        placeholders = ", ".join(["%s"] * len(self._columns))
        self._insert_sql = (
            f"INSERT INTO {audit_events.name} ({', '.join(self._columns)}) "  # noqa: S608 (names are ours)
            f"VALUES ({placeholders})"
        )
        self._lock = threading.Lock()
        self._raw: Any = None  # the pooled DBAPI connection we hold between batches
        self._head: Head | None = None
        self._contended_until = 0.0
        self.fast_commits = 0  # batches that took one round trip
        self.locked_commits = 0  # batches that read the head under the lock first
        self.collisions = 0  # fast attempts that met another replica's append

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Seal events on the chain's head and commit them in one transaction; all or none."""
        with self._lock:
            try:
                return self._append(events)
            except psycopg.Error as exc:
                self._head = None  # we no longer know the head for sure
                self._discard(broken=isinstance(exc, psycopg.OperationalError))
                raise AuditUnavailable("The audit log cannot be written.") from exc

    def close(self) -> None:
        """Give the connection back to the pool."""
        with self._lock:
            self._discard(broken=False)

    def _append(self, events: Sequence[Event]) -> list[Event]:
        pg = self._connection()
        if self._head is not None and time.monotonic() >= self._contended_until:
            sealed, bodies = seal_batch(events, self._head)
            if self._commit_on_known_head(pg, sealed, bodies):
                self.fast_commits += 1
                return sealed
        sealed, bodies = seal_batch(events, self._locked_head(pg))
        self._insert_and_commit(pg, sealed, bodies)
        self.locked_commits += 1
        return sealed

    def _commit_on_known_head(
        self, pg: psycopg.Connection[Any], sealed: list[Event], bodies: list[str]
    ) -> bool:
        """One round trip: BEGIN, lock, INSERTs, COMMIT. False if another writer got there first."""
        try:
            with pg.pipeline():
                pg.execute(_LOCK_SQL, (AUDIT_LOCK_KEY,))
                self._insert(pg, sealed, bodies)
                pg.commit()
        except pg_errors.UniqueViolation as exc:
            pg.rollback()
            if not _is_seq_collision(exc):
                raise
            self.collisions += 1
            self._head = None
            self._contended_until = time.monotonic() + CONTENDED_SECONDS
            return False
        self._head = head_of(sealed)
        return True

    def _locked_head(self, pg: psycopg.Connection[Any]) -> Head:
        """Open the transaction, take the chain lock and read the head: one round trip."""
        with pg.pipeline():
            pg.execute(_LOCK_SQL, (AUDIT_LOCK_KEY,))
            # A statement of its own, after the lock: its snapshot sees every earlier append.
            cursor = pg.execute(HEAD_SQL)
        return head_from_row(cursor.fetchone())

    def _insert_and_commit(
        self, pg: psycopg.Connection[Any], sealed: list[Event], bodies: list[str]
    ) -> None:
        try:
            with pg.pipeline():
                self._insert(pg, sealed, bodies)
                pg.commit()
        except psycopg.Error:
            pg.rollback()
            raise
        self._head = head_of(sealed)

    def _insert(self, pg: psycopg.Connection[Any], sealed: list[Event], bodies: list[str]) -> None:
        rows = [self.row_of(event, body) for event, body in zip(sealed, bodies, strict=True)]
        with pg.cursor() as cursor:
            cursor.executemany(self._insert_sql, [[r[c] for c in self._columns] for r in rows])
            for row in companions():  # the outbox's rows: same transaction, same round trip
                cursor.execute(row.sql("%s"), tuple(row.values.values()))

    def _connection(self) -> psycopg.Connection[Any]:
        if self._raw is None:
            # Held between batches: no pool checkout (and no pre-ping) on the commit path.
            self._raw = self.engine.raw_connection()
        connection: psycopg.Connection[Any] = self._raw.driver_connection
        return connection

    def _discard(self, *, broken: bool) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        if broken:
            raw.invalidate()
        else:
            raw.close()


def _is_seq_collision(exc: pg_errors.UniqueViolation) -> bool:
    """True when the unique violation is the primary key on seq (a race lost to another replica).

    The only unique key on audit_events since revision 0008; checked by name all the same, so a
    unique key added later fails its batch rather than being retried as a lost race.
    """
    constraint = exc.diag.constraint_name or ""
    return constraint.endswith("_pkey")
