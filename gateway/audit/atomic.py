"""An administrative change and its audit event, committed in one database transaction.

Grants, camera zones, suspensions and flags live in the same database as the audit chain, so
a change and the event that records it can share one transaction: both land, or neither does
(docs/security.md, "a change and its event commit together"). A change with no event behind it
is what the threat model reads as tampering; an event for a change that never happened lies.

The transaction takes the chain's write lock first (BEGIN IMMEDIATE on SQLite, the advisory
lock on PostgreSQL: gateway/db.py), makes the change, then reads the head and appends the event
on it. That is the group-commit writer's own locking, so the chain stays one chain: the writer
either waits for this transaction or, on PostgreSQL, finds its remembered head taken and falls
back to reading the head under the lock (pg_append.py). Admin changes are rare; they do not
join a group-commit batch, whose other events must not fail because one change was refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.chain import read_head, seal_batch
from gateway.audit.events import Event
from gateway.audit.store import row_of
from gateway.db import audit_events, begin_write, lock_audit_chain
from gateway.errors import AuditUnavailable

T = TypeVar("T")
Change = Callable[[Connection], T]
EventOf = Callable[[T], Event | None]  # the change's result → its event (None: nothing changed)
EventsOf = Callable[[T], Sequence[Event]]  # the change's result → its events, in order


def commit_with_event(
    engine: Engine, change: Change[T], event_of: EventOf[T], *, lock_timeout: float
) -> tuple[T, Event | None]:
    """Run change(conn) and append event_of(result) in one transaction; all or nothing.

    The change's own refusals (NotFound, BadRequest) roll it back and pass through unchanged;
    any database failure, the audit insert's included, rolls both back as AuditUnavailable.
    """

    def events_of(result: T) -> list[Event]:
        event = event_of(result)
        return [] if event is None else [event]

    result, sealed = commit_with_events(engine, change, events_of, lock_timeout=lock_timeout)
    return result, (sealed[0] if sealed else None)


def commit_with_events(
    engine: Engine, change: Change[T], events_of: EventsOf[T], *, lock_timeout: float
) -> tuple[T, list[Event]]:
    """commit_with_event for a change that is several events (an approval and its grant)."""
    try:
        with begin_write(engine) as conn:
            _bound_lock_wait(conn, lock_timeout)
            lock_audit_chain(conn)
            result = change(conn)
            events = list(events_of(result))
            if not events:
                return result, []
            sealed, bodies = seal_batch(events, read_head(conn))
            conn.execute(
                audit_events.insert(),
                [row_of(one, body) for one, body in zip(sealed, bodies, strict=True)],
            )
    except SQLAlchemyError as exc:
        raise AuditUnavailable("The change and its audit event could not be committed.") from exc
    return result, list(sealed)


def _bound_lock_wait(conn: Connection, seconds: float) -> None:
    """Wait for the chain lock at most as long as an append would (SQLite: busy_timeout)."""
    # Bounded so a stuck writer is a 503 the caller can trust (the transaction rolled back),
    # never an answer given while the change may still land later.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'"))
