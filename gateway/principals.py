"""Principal status: suspended or active, with who changed it and why.

Checked on every authenticated request (a suspended principal gets 403 on everything), so the
lookup is one primary-key read; with several replicas the database is the one truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.db import principals, reading, writing
from gateway.types import PrincipalState, format_ts

# Built once: on every request, building and keying the statement cost more than running it.
STATUS_BY_SUB = principals.select().where(principals.c.sub == sa.bindparam("sub"))


@dataclass(frozen=True, slots=True)
class PrincipalStatus:
    sub: str
    status: PrincipalState = PrincipalState.ACTIVE
    reason: str = ""
    changed_at: str | None = None
    changed_by: str | None = None

    @property
    def suspended(self) -> bool:
        return self.status == PrincipalState.SUSPENDED

    def as_json(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "status": self.status,
            "reason": self.reason,
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
        }


def status_from_row(sub: str, row: Any) -> PrincipalStatus:
    """A STATUS_BY_SUB row (any mapping by column name), or None: never suspended, so active."""
    if row is None:
        return PrincipalStatus(sub)
    status = PrincipalState(row["status"])
    return PrincipalStatus(sub, status, row["reason"], row["changed_at"], row["changed_by"])


class PrincipalStore:
    """Suspensions in the database (sync: call from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def status(self, sub: str, conn: Connection | None = None) -> PrincipalStatus:
        with reading(self.engine, conn) as c:
            return status_from_row(sub, c.execute(STATUS_BY_SUB, {"sub": sub}).mappings().first())

    def set_status(
        self,
        sub: str,
        status: PrincipalState,
        reason: str,
        by: str,
        now: datetime,
        conn: Connection | None = None,
    ) -> bool:
        """Set the status; True when it changed (suspending twice is one suspension).

        In `conn`'s transaction when given (a change and its audit event commit together).
        """
        values = {
            "status": status,
            "reason": reason,
            "changed_at": format_ts(now),
            "changed_by": by,
        }
        # Read-then-write under the write lock from the start: a deferred SQLite transaction
        # that reads first fails at once ("database is locked") if another writer committed
        # meanwhile, and an automatic suspension must not be lost to that (contract §8).
        with writing(self.engine, conn) as c:
            current = c.execute(
                sa.select(principals.c.status).where(principals.c.sub == sub)
            ).scalar()
            if current == status or (current is None and status == PrincipalState.ACTIVE):
                return False
            if current is None:
                c.execute(principals.insert().values(sub=sub, **values))
            else:
                c.execute(principals.update().where(principals.c.sub == sub).values(**values))
        return True
