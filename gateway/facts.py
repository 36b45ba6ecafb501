"""What the database says about one request, read fresh every time: is the caller suspended,
what zone is the camera in, which grants could cover the request.

This is the one place that asks "is this principal suspended?" for a request: footage requests
ask it with their other facts (`read`), administrative routes ask it alone (`status`), both by
the same statement and the same mapping from its row, on the same path described below.

Nothing here is cached: a suspension, a zone change or a revocation counts from the very next
request. The three reads are one read transaction.

Where they run is the whole point of this module (docs/benchmarks.md has the profiles). Sent
to a worker thread, they cost more in thread wake-ups and GIL hand-offs than in SQL, and
SQLAlchemy Core's execution machinery costs more than the lookups themselves. On SQLite, the
three indexed lookups are cheap in C, so they run right here on the event loop's thread, on a
connection of their own, through the driver, with statements compiled once from the stores'
own SQLAlchemy statements (one source for the SQL). That connection never waits for a lock
(busy_timeout 0: in WAL mode a reader does not wait for writers anyway); if SQLite says busy
or anything else goes wrong there, the same reads go the usual way, through the stores in a
worker thread, which also reports the failure as it always has. PostgreSQL reads always go
that way: a network round trip must never hold up the loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from gateway.cameras import ZONE_BY_CAMERA, CameraStore, zone_from_row
from gateway.db import reading
from gateway.grants import (
    Grant,
    GrantStore,
    candidates_params,
    candidates_statement,
    grant_from_row,
    grantee_names,
)
from gateway.principals import STATUS_BY_SUB, PrincipalStatus, PrincipalStore, status_from_row
from gateway.types import STAFF_ROLES, CameraRef, Principal, Zone

log = structlog.get_logger("gateway.facts")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database says about one request: read together, used once."""

    suspended: bool
    zone: Zone
    grants: list[Grant]


@dataclass(slots=True)
class FactsReader:
    """Reads the Facts of a request; see the module docstring for where and why."""

    principals: PrincipalStore
    cameras: CameraStore
    grants: GrantStore
    _inline: _InlineSqlite | None = None

    @classmethod
    def for_engine(
        cls, engine: Engine, principals: PrincipalStore, cameras: CameraStore, grants: GrantStore
    ) -> FactsReader:
        return cls(principals, cameras, grants, _InlineSqlite.open(engine))

    async def status(self, sub: str) -> PrincipalStatus:
        """The principal's status (suspended or not), by the same path as read()."""
        if self._inline is not None:
            try:
                return self._inline.status(sub)
            except sqlite3.Error as exc:  # busy, or worse: the threaded path reports it
                log.warning("inline_read_failed", error=str(exc))
        return await anyio.to_thread.run_sync(self.principals.status, sub)

    async def read(self, principal: Principal, camera: CameraRef, now: datetime) -> Facts:
        """The request's Facts, on the loop when SQLite can answer at once, else in a thread."""
        staff = sorted(principal.known_roles & STAFF_ROLES)
        grantees = grantee_names(principal.sub, staff) if staff else []
        if self._inline is not None:
            try:
                return self._inline.read(principal.sub, camera, grantees, now)
            except sqlite3.Error as exc:  # busy, or worse: the threaded path reports it
                log.warning("inline_read_failed", error=str(exc))
        return await anyio.to_thread.run_sync(
            self._read_in_thread, principal, camera, grantees, now
        )

    def _read_in_thread(
        self, principal: Principal, camera: CameraRef, grantees: list[str], now: datetime
    ) -> Facts:
        with reading(self.principals.engine) as conn:  # the stores share the one engine
            zone = self.cameras.zone_of(camera, conn)  # a suspended caller's denial names it
            if self.principals.status(principal.sub, conn).suspended:
                return Facts(True, zone, [])
            found = (
                self.grants.candidates(grantees, camera.customer_id, now, conn) if grantees else []
            )
        return Facts(False, zone, found)

    def close(self) -> None:
        """Give back the loop's connection (lifespan shutdown)."""
        if self._inline is not None:
            self._inline.close()
            self._inline = None


class _InlineSqlite:
    """The loop's own SQLite connection and the three statements, compiled once."""

    def __init__(self, pooled: Any) -> None:
        self._pooled = pooled  # SQLAlchemy's pool proxy: the engine's connect pragmas applied
        self._db: sqlite3.Connection = pooled.driver_connection
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=0")  # never wait on the loop: fall back instead
        self._db.execute("PRAGMA query_only=ON")  # this connection can never write
        self._status = _sql(STATUS_BY_SUB)
        self._zone = _sql(ZONE_BY_CAMERA)
        self._candidates: dict[int, str] = {}

    @classmethod
    def open(cls, engine: Engine) -> _InlineSqlite | None:
        """One for a file database; None for PostgreSQL and in-memory SQLite."""
        database = engine.url.database or ""
        if (
            engine.dialect.name != "sqlite"
            or database in ("", ":memory:")
            or "memory" in str(engine.url.query.get("mode", ""))
        ):
            return None
        return cls(engine.raw_connection())

    def status(self, sub: str) -> PrincipalStatus:
        """One read: in or out of read()'s transaction, the statement sees committed rows."""
        return status_from_row(sub, self._db.execute(self._status, {"sub": sub}).fetchone())

    def read(self, sub: str, camera: CameraRef, grantees: Sequence[str], now: datetime) -> Facts:
        db = self._db
        db.execute("BEGIN")  # one snapshot for the three reads
        try:
            key = {"customer_id": camera.customer_id, "camera_id": camera.camera_id}
            zone = zone_from_row(db.execute(self._zone, key).fetchone())
            if self.status(sub).suspended:  # refused, in the camera's real zone
                return Facts(True, zone, [])
            found: list[Grant] = []
            if grantees:
                params = candidates_params(grantees, camera.customer_id, now)
                rows = db.execute(self._candidates_sql(len(grantees)), params).fetchall()
                found = [grant_from_row(row) for row in rows]
        finally:
            db.execute("ROLLBACK")
        return Facts(False, zone, found)

    def _candidates_sql(self, count: int) -> str:
        sql = self._candidates.get(count)
        if sql is None:
            sql = self._candidates[count] = _sql(candidates_statement(count))
        return sql

    def close(self) -> None:
        self._pooled.close()


_NAMED = sqlite_dialect.dialect(paramstyle="named")


def _sql(statement: sa.ClauseElement) -> str:
    """SQLite text of a store's statement, with :name parameters the driver binds itself."""
    return str(statement.compile(dialect=_NAMED))
