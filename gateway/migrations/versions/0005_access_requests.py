"""Access requests, their staff approvals, break-glass reviews; grants learn their request.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables and their indexes; add grants.request_id and grants.approval."""
    op.create_table(
        "access_requests",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("cameras", sa.Text, nullable=False),  # JSON list, or ["*"]
        sa.Column("footage_from", sa.String(32), nullable=False),
        sa.Column("footage_until", sa.String(32), nullable=False),
        sa.Column("ticket", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("include_private", sa.Boolean, nullable=False),
        sa.Column("approver", sa.String(16), nullable=False),  # customer | staff
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("approver_roles", sa.Text, nullable=False),  # JSON list (staff approval)
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("answered_at", sa.String(32)),
        sa.Column("answered_by", sa.String(256)),
        sa.Column("message", sa.Text),
        sa.Column("grant_id", sa.String(40)),
    )
    op.create_table(
        "access_request_approvals",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("approver", sa.String(256), primary_key=True),
        sa.Column("approved_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.String(40), primary_key=True),
        sa.Column("subject", sa.String(256), nullable=False),  # who used break-glass
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),  # open | closed
        sa.Column("opened_at", sa.String(32), nullable=False),
        sa.Column("due_at", sa.String(32), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),  # JSON list: the uses it covers
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("closed_at", sa.String(32)),
        sa.Column("closed_by", sa.String(256)),
        sa.Column("note", sa.Text),
        sa.Column("overdue_flag_id", sa.String(40)),  # set once, by the replica that flags it
    )
    op.create_index("ix_access_requests_customer", "access_requests", ["customer_id", "created_at"])
    op.create_index("ix_access_requests_requester", "access_requests", ["requester", "created_at"])
    op.create_index("ix_access_requests_state", "access_requests", ["state", "expires_at"])
    op.create_index("ix_reviews_state", "reviews", ["state", "due_at"])
    op.create_index("ix_reviews_subject", "reviews", ["subject", "customer_id", "state"])
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("request_id", sa.String(40)))
        batch.add_column(
            sa.Column("approval", sa.String(16), nullable=False, server_default="customer")
        )


def downgrade() -> None:
    """Drop what upgrade made (the grants keep working without their request)."""
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("approval")
        batch.drop_column("request_id")
    for table in ("reviews", "access_request_approvals", "access_requests"):
        op.drop_table(table)
