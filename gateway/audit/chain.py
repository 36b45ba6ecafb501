"""The audit chain's head, its genesis, and sealing a batch onto a head (contract §7).

Both appenders (SQLite in store.py, PostgreSQL in pg_append.py) and the checkpointer ask
"what is the head?" and "seal these onto it" here, so the chain has one definition: an empty
log's head is seq 0 with the genesis hash, and each event's prev_hash is the hash before it.
Who holds the lock while reading the head is the appenders' business, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.audit.events import Event, seal_with_body
from gateway.db import audit_events

GENESIS_HASH = "0" * 64

# Plain SQL, no parameters: the same text runs on the sqlite3 and psycopg drivers directly
# and through SQLAlchemy (the appenders bypass SQLAlchemy on their commit paths, store.py).
HEAD_SQL = f"SELECT seq, hash FROM {audit_events.name} ORDER BY seq DESC LIMIT 1"  # noqa: S608


@dataclass(frozen=True, slots=True)
class Head:
    """The last committed event's place in the chain."""

    seq: int
    hash: str


GENESIS = Head(0, GENESIS_HASH)


def head_from_row(row: Sequence[Any] | None) -> Head:
    """The head a HEAD_SQL row names; no row: the empty log's genesis head."""
    return Head(int(row[0]), str(row[1])) if row else GENESIS


def read_head(conn: Connection) -> Head:
    """The head as this connection's transaction sees it (through SQLAlchemy)."""
    return head_from_row(conn.execute(sa.text(HEAD_SQL)).first())


def seal_batch(events: Sequence[Event], head: Head) -> tuple[list[Event], list[str]]:
    """The events sealed onto head in order, and each one's canonical JSON (hashed once)."""
    sealed: list[Event] = []
    bodies: list[str] = []
    seq, prev = head.seq, head.hash
    for event in events:
        seq += 1
        done, body = seal_with_body(event, seq, prev)
        sealed.append(done)
        bodies.append(body)
        prev = done["hash"]
    return sealed, bodies


def head_of(sealed: Sequence[Event]) -> Head:
    """The head once these sealed events are committed (the last one's seq and hash)."""
    return Head(int(sealed[-1]["seq"]), str(sealed[-1]["hash"]))
