"""The transactional outbox of notifications and security alerts (contract §14).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Make `notifications`, its due-time index and its per-customer index."""
    op.create_table(
        "notifications",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("destination", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(120), unique=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.String(32)),
        sa.Column("delivered_at", sa.String(32)),
        sa.Column("gave_up_at", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", sa.String(32)),
    )
    op.create_index("ix_notifications_due", "notifications", ["next_attempt_at"])
    op.create_index("ix_notifications_customer", "notifications", ["customer_id", "seq"])


def downgrade() -> None:
    """Drop the outbox (undelivered notifications with it)."""
    op.drop_index("ix_notifications_customer", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_table("notifications")
