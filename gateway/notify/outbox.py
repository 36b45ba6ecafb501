"""The outbox table: write a notification in the caller's transaction; claim, settle and list.

A notification exists iff the event that causes it committed: `notify(conn, …)` inserts in the
transaction the caller holds (an administrative change and its audit event, atomic.py), and
`companion(…)` gives the same row to ride in a group-commit batch (audit/companions.py). The
worker claims due rows with a lease (claimed_by, claimed_until): on PostgreSQL with
`FOR UPDATE SKIP LOCKED`, so replicas never claim the same row; on SQLite inside
BEGIN IMMEDIATE, the single writer. A claim that outlives its holder (a killed process) lapses
and the row is claimed again: delivery is at least once (contract §14).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.audit.companions import Companion
from gateway.db import begin_write, grants, notifications, reading
from gateway.types import format_ts, now_ts

MAX_PAGE = 200
_DUE = notifications.c.next_attempt_at


class Destination(StrEnum):
    """Where a row is posted: the customer's webhook, or the security-alert webhook."""

    CUSTOMER = "customer"
    ALERT = "alert"


class Kind(StrEnum):
    """The customer notification kinds (contract §14); alerts keep their own names."""

    GRANT_FIRST_USE = "grant.first_use"
    GRANT_EXPIRING = "grant.expiring"
    ACCESS_EMERGENCY = "access.emergency"
    ACCESS_LEGAL_REQUEST = "access.legal_request"


def new_id() -> str:
    """A notification id: the webhook-id its every delivery attempt carries."""
    return "msg_" + secrets.token_urlsafe(18)


def row_values(
    destination: Destination,
    customer_id: str | None,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """One new, due row by column name."""
    created = created_at or now_ts()
    return {
        "id": new_id(),
        "destination": str(destination),
        "customer_id": customer_id,
        "kind": kind,
        "payload": json.dumps(payload, sort_keys=True, separators=(",", ":")),
        "dedupe_key": dedupe_key,
        "created_at": created,
        "attempts": 0,
        "next_attempt_at": created,
    }


def companion(
    destination: Destination,
    customer_id: str | None,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
) -> Companion:
    """The row as a companion of an audit append: it commits with the event, or not at all."""
    values = row_values(destination, customer_id, kind, payload, dedupe_key=dedupe_key)
    return Companion(notifications.name, values)


def notify(
    conn: Connection,
    customer_id: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    dedupe_key: str | None = None,
) -> None:
    """Write a customer notification in the caller's open transaction (none of its own).

    Call it inside the change that commits with its audit event (AuditLog.commit_with): the
    notification then exists iff the event committed. A `dedupe_key` already used is skipped.
    """
    insert_rows(
        conn, [companion(Destination.CUSTOMER, customer_id, kind, payload, dedupe_key=dedupe_key)]
    )


def insert_rows(conn: Connection, rows: list[Companion]) -> None:
    """Insert companion rows on `conn` (ON CONFLICT DO NOTHING, as in an audit batch)."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    for row in rows:
        conn.exec_driver_sql(row.sql(mark), tuple(row.values.values()))


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed row, as the worker posts it."""

    id: str
    destination: Destination
    customer_id: str | None
    kind: str
    payload: dict[str, Any]
    created_at: str
    attempts: int  # before this one


@dataclass(frozen=True, slots=True)
class Backlog:
    """Undelivered rows: how many, and the oldest one's creation time (None: nothing waits)."""

    count: int
    oldest: str | None


class OutboxStore:
    """The worker's and the API's queries on `notifications`; sync, run in worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def any_due(self, now: datetime) -> bool:
        """A cheap read first: the claim takes the write lock only when something is due."""
        stmt = sa.select(notifications.c.seq).where(format_ts(now) >= _DUE).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def claim(
        self, worker: str, now: datetime, lease: timedelta, limit: int, destinations: set[str]
    ) -> list[Pending]:
        """Take up to `limit` due rows nobody holds, for `lease`; atomically (see the docstring)."""
        if limit <= 0 or not destinations:
            return []
        stamp = format_ts(now)
        c = notifications.c
        free = sa.or_(c.claimed_until.is_(None), c.claimed_until < stamp)
        pick = (
            sa.select(notifications)
            .where(stamp >= _DUE, free, c.destination.in_(sorted(destinations)))
            .order_by(_DUE)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's BEGIN IMMEDIATE instead
        )
        with begin_write(self.engine) as conn:
            rows = conn.execute(pick).mappings().all()
            if not rows:
                return []
            conn.execute(
                notifications.update()
                .where(c.id.in_([r["id"] for r in rows]))
                .values(claimed_by=worker, claimed_until=format_ts(now + lease))
            )
        return [_pending(r) for r in rows]

    def settle_unsendable(self, destinations: set[str], now: datetime) -> int:
        """Rows for a destination with no webhook are kept (customers list them) but never sent."""
        if not destinations:
            return 0
        c = notifications.c
        where = (_DUE.is_not(None), c.destination.in_(sorted(destinations)))
        with self.engine.connect() as conn:
            if conn.execute(sa.select(c.seq).where(*where).limit(1)).first() is None:
                return 0
        with begin_write(self.engine) as conn:
            done = conn.execute(
                notifications.update()
                .where(*where)
                .values(next_attempt_at=None, last_error="no webhook configured")
            )
            return int(done.rowcount or 0)

    def retry_later(self, pending: Pending, worker: str, error: str, next_at: datetime) -> None:
        """A failed attempt with attempts left: count it, say why, and release the claim."""
        with begin_write(self.engine) as conn:
            conn.execute(
                _mine(pending.id, worker).values(
                    attempts=pending.attempts + 1,
                    last_error=error[:1000],
                    next_attempt_at=format_ts(next_at),
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    def mark_delivered(
        self, conn: Connection, pending: Pending, worker: str, now: datetime
    ) -> bool:
        """Settled as delivered, in the caller's transaction; False if the claim was lost."""
        done = conn.execute(
            _mine(pending.id, worker).values(
                attempts=pending.attempts + 1,
                delivered_at=format_ts(now),
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        return bool(done.rowcount)

    def mark_given_up(
        self, conn: Connection, pending: Pending, worker: str, error: str, now: datetime
    ) -> bool:
        """Settled as failed for good, in the caller's transaction; False if the claim was lost."""
        done = conn.execute(
            _mine(pending.id, worker).values(
                attempts=pending.attempts + 1,
                last_error=error[:1000],
                gave_up_at=format_ts(now),
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        return bool(done.rowcount)

    def backlog(self) -> dict[str, Backlog]:
        """Per destination, the rows still to be sent (a gauge and /readyz's detail)."""
        c = notifications.c
        stmt = (
            sa.select(c.destination, sa.func.count(), sa.func.min(c.created_at))
            .where(_DUE.is_not(None))
            .group_by(c.destination)
        )
        with self.engine.connect() as conn:
            found = {str(d): Backlog(int(n), o) for d, n, o in conn.execute(stmt)}
        return {str(d): found.get(str(d), Backlog(0, None)) for d in Destination}

    def last_error(self) -> str | None:
        """The most recent failure of a row still waiting, if any (for /readyz)."""
        c = notifications.c
        stmt = (
            sa.select(c.last_error)
            .where(_DUE.is_not(None), c.last_error.is_not(None))
            .order_by(c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else str(row[0])

    def for_customer(
        self, customer_id: str, before_seq: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """One customer's notifications, newest first (GET /v1/me/notifications)."""
        c = notifications.c
        stmt = sa.select(notifications).where(c.customer_id == customer_id)
        if before_seq is not None:
            stmt = stmt.where(c.seq < before_seq)
        stmt = stmt.order_by(c.seq.desc()).limit(max(1, min(limit, MAX_PAGE)))
        with reading(self.engine) as conn:
            return [_listed(r) for r in conn.execute(stmt).mappings()]

    def warn_expiring(self, now: datetime, ahead: timedelta) -> int:
        """A grant.expiring notification, once per grant, for grants ending within `ahead`."""
        g = grants.c
        soon = (
            sa.select(g.grant_id, g.customer_id, g.grantee, g.purpose, g.ticket, g.expires_at)
            .where(
                g.revoked_at.is_(None),
                g.expires_at > format_ts(now),
                g.expires_at <= format_ts(now + ahead),
                ~sa.exists().where(notifications.c.dedupe_key == _expiry_key_sql(g.grant_id)),
            )
            .limit(500)
        )
        with self.engine.connect() as conn:
            found = conn.execute(soon).mappings().all()
        if not found:
            return 0
        rows = [
            companion(
                Destination.CUSTOMER,
                r["customer_id"],
                Kind.GRANT_EXPIRING,
                {k: r[k] for k in ("grant_id", "grantee", "purpose", "ticket", "expires_at")},
                dedupe_key=expiry_key(r["grant_id"]),
            )
            for r in found
        ]
        with begin_write(self.engine) as conn:
            insert_rows(conn, rows)
        return len(rows)


EXPIRY_PREFIX = f"{Kind.GRANT_EXPIRING}:"


def expiry_key(grant_id: str) -> str:
    """The dedupe key that makes a grant's expiry warning once per grant, across replicas."""
    return EXPIRY_PREFIX + grant_id


def _expiry_key_sql(grant_id: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    return sa.literal(EXPIRY_PREFIX) + grant_id


def _mine(notification_id: str, worker: str) -> sa.Update:
    """An UPDATE of one row that only lands while this worker still holds its claim."""
    c = notifications.c
    return notifications.update().where(c.id == notification_id, c.claimed_by == worker)


def _pending(row: Any) -> Pending:
    return Pending(
        id=row["id"],
        destination=Destination(row["destination"]),
        customer_id=row["customer_id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        attempts=int(row["attempts"]),
    )


def _listed(row: Any) -> dict[str, Any]:
    """A row as GET /v1/me/notifications shows it (contract §14)."""
    if row["delivered_at"]:
        state = "delivered"
    elif row["gave_up_at"]:
        state = "failed"
    elif row["next_attempt_at"] is None:
        state = "not_sent"
    else:
        state = "pending"
    return {
        "seq": row["seq"],
        "id": row["id"],
        "kind": row["kind"],
        "created_at": row["created_at"],
        "data": json.loads(row["payload"]),
        "state": state,
        "delivered_at": row["delivered_at"],
    }
