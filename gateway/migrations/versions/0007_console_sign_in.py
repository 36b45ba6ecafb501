"""Sign-in through the identity provider: logins in progress and console sessions (contract §15).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `oidc_logins` and `console_sessions` (both start empty)."""
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("binding_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("return_to", sa.String(512), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_oidc_logins_created", "oidc_logins", ["created_at"])
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("sub", sa.String(256), nullable=False),
        sa.Column("access_token", sa.Text, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])


def downgrade() -> None:
    """Drop both tables: every console session ends, every login in progress fails."""
    op.drop_index("ix_console_sessions_expires", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_oidc_logins_created", "oidc_logins")
    op.drop_table("oidc_logins")
