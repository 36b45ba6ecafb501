"""The audit table's append path: `seq` the rowid on SQLite; no index nothing queries.

Revision ID: 0008
Revises: 0007

Every index on `audit_events` is paid for by every append: on SQLite each one whose key is random
dirties one more page per event, and each dirty page is written to the WAL and synced before the
batch is acknowledged (docs/benchmarks.md, "Durable audit appends: the append path"). So:

- SQLite: the table is copied into one where `seq` is `INTEGER PRIMARY KEY`, the rowid itself
  (a `BIGINT` primary key is a second B-tree beside the rowid's, kept in step on each insert).
- Both dialects: the unique index on `event_id` goes. No query looks an event up by its id;
  the ids are random UUIDs made once per event (gateway/ids.py), so the index was one random page
  per event, spent guarding against a collision of 122 random bits.
- Both dialects: `ix_audit_request` goes. Its one reader, the customer's access log finding the
  `access.complete` of each decision on a page, reads the customer's events from the page's
  oldest decision on through `ix_audit_customer_seq` (gateway/api/me.py); SQLite's planner
  picked that index for the query already.

The indexes the queries use stay: principal and customer by seq (timelines, detection, the
access log), `ts` (time windows) and `grant_id` (a grant's uses).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

TABLE = "audit_events"
COPY = "audit_events_0008"
COLUMNS = (
    "seq, event_id, ts, type, request_id, principal, customer_id, decision, grant_id, "
    "body, prev_hash, hash"
)
# What 0001 made on PostgreSQL for `unique=True` on the column (its default naming).
PG_EVENT_ID_UNIQUE = "audit_events_event_id_key"


def upgrade() -> None:
    """SQLite: copy the table with `seq` as its rowid. PostgreSQL: drop the two indexes."""
    if op.get_bind().dialect.name == "sqlite":
        _copy_table(sa.Integer(), unique_event_id=False)
        _secondary_indexes()
        return
    op.drop_constraint(PG_EVENT_ID_UNIQUE, TABLE, type_="unique")
    op.drop_index("ix_audit_request", TABLE)


def downgrade() -> None:
    """Put back the `BIGINT` key, the unique event ids and the request index."""
    if op.get_bind().dialect.name == "sqlite":
        _copy_table(sa.BigInteger(), unique_event_id=True)
        _secondary_indexes()
    else:
        op.create_unique_constraint(PG_EVENT_ID_UNIQUE, TABLE, ["event_id"])
    op.create_index("ix_audit_request", TABLE, ["request_id"])


def _copy_table(seq_type: sa.types.TypeEngine[int], *, unique_event_id: bool) -> None:
    """Rebuild audit_events with this `seq` type: SQLite cannot change a primary key in place."""
    op.create_table(
        COPY,
        sa.Column("seq", seq_type, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=unique_event_id),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("principal", sa.String(256)),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("decision", sa.String(8)),
        sa.Column("grant_id", sa.String(40)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # In seq order: the rows land in the new rowid B-tree as appends do.
    op.execute(f"INSERT INTO {COPY} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE} ORDER BY seq")  # noqa: S608
    op.drop_table(TABLE)  # and its indexes with it
    op.rename_table(COPY, TABLE)


def _secondary_indexes() -> None:
    op.create_index("ix_audit_principal_seq", TABLE, ["principal", "seq"])
    op.create_index("ix_audit_customer_seq", TABLE, ["customer_id", "seq"])
    op.create_index("ix_audit_ts", TABLE, ["ts"])
    op.create_index("ix_audit_grant", TABLE, ["grant_id"])
