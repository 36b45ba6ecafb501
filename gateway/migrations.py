"""Plain, versioned schema migrations: `footage-gateway migrate` applies them, `serve` checks them.

Each migration is a numbered function run once inside a transaction; the applied numbers are
kept in `schema_version`. Version 1 is the whole schema of `gateway.db`; version 2 gives the
deployment its cluster id (the namespace of its Redis channels).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.db import cluster_info, metadata, schema_version


def _v1_initial(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2_cluster_id(conn: Connection) -> None:
    # One random id per deployment (not per replica): replicas sharing this database share it,
    # and it keeps their Redis channels apart from any other deployment on the same Redis.
    cluster_info.create(conn, checkfirst=True)
    exists = conn.execute(
        sa.select(cluster_info.c.value).where(cluster_info.c.name == "cluster_id")
    ).first()
    if exists is None:
        conn.execute(cluster_info.insert().values(name="cluster_id", value=uuid.uuid4().hex))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [
    (1, _v1_initial),
    (2, _v2_cluster_id),
]
LATEST = MIGRATIONS[-1][0]


class SchemaOutOfDate(Exception):
    """The database is behind this code: run `footage-gateway migrate`."""


def applied_version(engine: Engine) -> int:
    """The newest applied migration, 0 for an empty database."""
    if not sa.inspect(engine).has_table(schema_version.name):
        return 0
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine) -> list[int]:
    """Apply every pending migration in order; returns the versions applied."""
    applied: list[int] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two replicas starting together must not both create the schema.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7301)"))
        schema_version.create(conn, checkfirst=True)
        current = int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)
        for version, step in MIGRATIONS:
            if version <= current:
                continue
            step(conn)
            conn.execute(
                schema_version.insert().values(
                    version=version, applied_at=datetime.now(UTC).isoformat()
                )
            )
            applied.append(version)
    return applied


def check(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless every migration is applied."""
    version = applied_version(engine)
    if version < LATEST:
        raise SchemaOutOfDate(
            f"database schema is at version {version}, this gateway needs {LATEST}: "
            "run `footage-gateway migrate`"
        )
