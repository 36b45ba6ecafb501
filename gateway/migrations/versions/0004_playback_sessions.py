"""Playback sessions and the requests made through them (contract §12).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create playback_sessions and playback_requests with their indexes."""
    op.create_table(
        "playback_sessions",
        sa.Column("session_id", sa.String(40), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("clip_id", sa.String(80), nullable=False),
        sa.Column("purpose", sa.String(32)),
        sa.Column("justification", sa.Text),
        sa.Column("grant_id", sa.String(40)),
        sa.Column("clip_size", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("last_request_at", sa.String(32)),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes_sent", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("ended_at", sa.String(32)),
        sa.Column("ended_reason", sa.String(24)),
        sa.Column("coverage", sa.Float),
    )
    op.create_index("ix_playback_state", "playback_sessions", ["state", "started_at"])
    op.create_index("ix_playback_principal", "playback_sessions", ["principal", "state"])
    op.create_index("ix_playback_customer", "playback_sessions", ["customer_id", "state"])
    op.create_index("ix_playback_request", "playback_sessions", ["request_id"])
    op.create_table(
        "playback_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("first_byte", sa.BigInteger),
        sa.Column("last_byte", sa.BigInteger),
        sa.Column("bytes_sent", sa.BigInteger),
        sa.Column("delivered_by", sa.String(8)),
    )
    op.create_index("ix_playback_requests_session", "playback_requests", ["session_id", "id"])


def downgrade() -> None:
    """Drop both tables (their rows are summed up in the audit log's playback.ended events)."""
    op.drop_index("ix_playback_requests_session", "playback_requests")
    op.drop_table("playback_requests")
    for name in ("ix_playback_request", "ix_playback_customer", "ix_playback_principal"):
        op.drop_index(name, "playback_sessions")
    op.drop_index("ix_playback_state", "playback_sessions")
    op.drop_table("playback_sessions")
