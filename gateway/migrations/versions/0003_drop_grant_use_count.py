"""Drop `grants.use_count`: nothing wrote it; a grant's uses are counted from the audit log.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the column; SQLite gets Alembic's batch mode (copy the table without it)."""
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("use_count")


def downgrade() -> None:
    """Put the column back, zero for every grant (as nothing ever wrote it)."""
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("use_count", sa.Integer, nullable=False, server_default="0"))
