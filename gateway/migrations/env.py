"""Alembic's entry point: run the revisions on the connection `gateway.migrations` hands over.

Only online migrations on a caller's connection: the caller holds the transaction and the locks
(gateway/migrations/__init__.py), so Alembic neither opens a connection nor commits.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through `footage-gateway migrate`, not the alembic CLI")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
