"""Give the deployment its cluster id, the namespace of its Redis channels (gateway/cluster/).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Make `cluster_info` and one random id per deployment (replicas on this database share it)."""
    conn = op.get_bind()
    # The old runner's version 1 was `create_all` of whatever the code held then: databases it
    # made after `cluster_info` joined gateway/db.py have the table (empty), older ones do not.
    if not sa.inspect(conn).has_table("cluster_info"):
        op.create_table(
            "cluster_info",
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("value", sa.String(200), nullable=False),
        )
    cluster_info = sa.table("cluster_info", sa.column("name"), sa.column("value"))
    exists = conn.execute(
        sa.select(cluster_info.c.value).where(cluster_info.c.name == "cluster_id")
    ).first()
    if exists is None:
        op.bulk_insert(cluster_info, [{"name": "cluster_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    """Drop `cluster_info` and the id with it."""
    op.drop_table("cluster_info")
