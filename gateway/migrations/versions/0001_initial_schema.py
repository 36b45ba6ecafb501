"""The initial schema: every table as the first release of the gateway made it.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the audit log, checkpoints, cameras, grants, flags and principals."""
    _audit_events()
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
    )
    op.create_table(
        "cameras",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("zone", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
    )
    _grants()
    _flags()
    op.create_table(
        "principals",
        sa.Column("sub", sa.String(256), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("changed_at", sa.String(32), nullable=False),
        sa.Column("changed_by", sa.String(256), nullable=False),
    )


def _audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
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
    op.create_index("ix_audit_principal_seq", "audit_events", ["principal", "seq"])
    op.create_index("ix_audit_customer_seq", "audit_events", ["customer_id", "seq"])
    op.create_index("ix_audit_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_request", "audit_events", ["request_id"])
    op.create_index("ix_audit_grant", "audit_events", ["grant_id"])


def _grants() -> None:
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("grantee", sa.String(300), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("cameras", sa.Text, nullable=False),
        sa.Column("footage_from", sa.String(32), nullable=False),
        sa.Column("footage_until", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("ticket", sa.String(200), nullable=False),
        sa.Column("include_private", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
        sa.Column("revoked_by", sa.String(256)),
        sa.Column("use_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_grants_lookup", "grants", ["grantee", "customer_id", "expires_at"])
    op.create_index("ix_grants_customer", "grants", ["customer_id", "created_at"])


def _flags() -> None:
    op.create_table(
        "flags",
        sa.Column("flag_id", sa.String(40), primary_key=True),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("window_key", sa.String(120), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("resolution", sa.Text),
        sa.Column("resolved_by", sa.String(256)),
        sa.Column("resolved_at", sa.String(32)),
        sa.UniqueConstraint("principal", "rule", "window_key", name="uq_flag_window"),
    )
    op.create_index("ix_flags_status", "flags", ["status", "created_at"])


def downgrade() -> None:
    """Drop every table (there is no schema before the first)."""
    for table in (
        "principals",
        "flags",
        "grants",
        "cameras",
        "audit_checkpoints",
        "audit_events",
    ):
        op.drop_table(table)
