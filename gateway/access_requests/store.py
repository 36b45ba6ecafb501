"""Access requests in the database: rows in, rows out, and the one conditional UPDATE.

Every state change is `UPDATE … WHERE request_id = ? AND state = 'pending'` (and, for an
answer, not yet expired): of two replicas or two clicks, exactly one changes the row and the
other finds it answered (contract §13). Sync code, run in worker threads inside the
transaction gateway/audit/atomic.py holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.access_requests.models import AccessRequestRecord
from gateway.db import access_request_approvals, access_requests, reading
from gateway.errors import NotFound
from gateway.types import RequestState, format_ts, parse_ts

MAX_LIST = 500


class AccessRequestStore:
    """The access_requests and access_request_approvals tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, conn: Connection, record: AccessRequestRecord) -> None:
        conn.execute(access_requests.insert().values(**_row(record)))

    def get(self, request_id: str, conn: Connection | None = None) -> AccessRequestRecord:
        with reading(self.engine, conn) as c:
            row = c.execute(
                access_requests.select().where(access_requests.c.request_id == request_id)
            ).first()
            if row is None:
                raise NotFound("No such access request.")
            return record_from_row(row._mapping, _approvers(c, request_id))

    def search(
        self,
        now: datetime,
        *,
        state: RequestState | None = None,
        customer_id: str | None = None,
        requester_or_staff: str | None = None,
        limit: int = 100,
    ) -> list[AccessRequestRecord]:
        """Newest first. `requester_or_staff`: this sub's own requests and every request that
        staff approve (the caller filters those by role)."""
        c = access_requests.c
        conds: list[sa.ColumnElement[bool]] = []
        if customer_id is not None:
            conds.append(c.customer_id == customer_id)
        if requester_or_staff is not None:
            conds.append(sa.or_(c.requester == requester_or_staff, c.approver == "staff"))
        if state is not None:
            conds.append(_state_is(state, format_ts(now)))
        stmt = access_requests.select().where(*conds).order_by(c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
            return [record_from_row(r._mapping, _approvers(conn, r.request_id)) for r in rows]

    def pending_past(self, now: datetime, limit: int = 100) -> list[str]:
        """Pending requests whose expiry has passed (the sweep marks them expired)."""
        c = access_requests.c
        stmt = (
            sa.select(c.request_id)
            .where(c.state == RequestState.PENDING, c.expires_at <= format_ts(now))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [str(r) for r in conn.execute(stmt).scalars()]

    def add_approval(self, conn: Connection, request_id: str, approver: str, now: datetime) -> bool:
        """Record one staff approval; False when this approver had already approved.

        Read then insert: safe, as every change runs under the audit chain's lock (atomic.py);
        the primary key would refuse a second row all the same.
        """
        if approver in _approvers(conn, request_id):
            return False
        conn.execute(
            access_request_approvals.insert().values(
                request_id=request_id, approver=approver, approved_at=format_ts(now)
            )
        )
        return True

    def answer(
        self,
        conn: Connection,
        request_id: str,
        state: RequestState,
        *,
        by: str,
        now: datetime,
        message: str | None = None,
        grant_id: str | None = None,
        unexpired: bool = True,
    ) -> bool:
        """Move a pending request to `state`, atomically; False when it is not pending (or,
        with `unexpired`, already past its expiry): someone else answered first."""
        c = access_requests.c
        conds = [c.request_id == request_id, c.state == RequestState.PENDING]
        ts = format_ts(now)
        conds.append(c.expires_at > ts if unexpired else c.expires_at <= ts)
        result = conn.execute(
            access_requests.update()
            .where(*conds)
            .values(state=state, answered_at=ts, answered_by=by, message=message, grant_id=grant_id)
        )
        return result.rowcount == 1


def _state_is(state: RequestState, now: str) -> sa.ColumnElement[bool]:
    """The state as callers see it (AccessRequestRecord.state_at), as a condition."""
    c = access_requests.c
    if state is RequestState.PENDING:
        return sa.and_(c.state == state, c.expires_at > now)
    if state is RequestState.EXPIRED:
        return sa.or_(
            c.state == state, sa.and_(c.state == RequestState.PENDING, c.expires_at <= now)
        )
    return c.state == state


def _approvers(conn: Connection, request_id: str) -> Sequence[str]:
    a = access_request_approvals.c
    stmt = sa.select(a.approver).where(a.request_id == request_id).order_by(a.approved_at)
    return [str(x) for x in conn.execute(stmt).scalars()]


def _row(record: AccessRequestRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "customer_id": record.customer_id,
        "requester": record.requester,
        "purpose": record.purpose,
        "cameras": json.dumps(list(record.cameras)),
        "footage_from": format_ts(record.footage_from),
        "footage_until": format_ts(record.footage_until),
        "ticket": record.ticket,
        "reason": record.reason,
        "duration_seconds": record.duration_seconds,
        "include_private": record.include_private,
        "approver": record.approver,
        "approvals_needed": record.approvals_needed,
        "approver_roles": json.dumps(list(record.approver_roles)),
        "state": record.state,
        "created_at": format_ts(record.created_at),
        "expires_at": format_ts(record.expires_at),
    }


def record_from_row(row: Any, approvals: Sequence[str] = ()) -> AccessRequestRecord:
    """An access_requests row (a mapping by column name) as a record."""
    answered_at = row["answered_at"]
    return AccessRequestRecord(
        request_id=row["request_id"],
        customer_id=row["customer_id"],
        requester=row["requester"],
        purpose=row["purpose"],
        cameras=tuple(json.loads(row["cameras"])),
        footage_from=parse_ts(row["footage_from"]),
        footage_until=parse_ts(row["footage_until"]),
        ticket=row["ticket"],
        reason=row["reason"],
        duration_seconds=int(row["duration_seconds"]),
        include_private=bool(row["include_private"]),
        approver=row["approver"],
        approvals_needed=int(row["approvals_needed"]),
        approver_roles=tuple(json.loads(row["approver_roles"])),
        state=RequestState(row["state"]),
        created_at=parse_ts(row["created_at"]),
        expires_at=parse_ts(row["expires_at"]),
        answered_at=parse_ts(answered_at) if answered_at else None,
        answered_by=row["answered_by"],
        message=row["message"],
        grant_id=row["grant_id"],
        approvals=tuple(approvals),
    )
