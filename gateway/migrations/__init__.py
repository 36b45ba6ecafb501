"""Schema migrations with Alembic: `footage-gateway migrate` applies them, `serve` checks them.

The revisions in `versions/` spell out each table, column and index (never `create_all` of
today's `gateway.db`), so a fresh database and an upgraded one reach the same schema by the same
steps (docs/deploy.md, "Migrations"). Alembic is configured here in code: the scripts ship inside
the package and no alembic.ini is read at run time. To add a revision, write the next
`versions/NNNN_what.py` by hand with `revision` and `down_revision`, and change `gateway.db` to
match; tests/test_migrations.py compares the two.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from gateway.db import begin_write

SCRIPTS = Path(__file__).resolve().parent

# Databases made by the hand-written runner this replaced kept their version in
# `schema_version`; its versions 1 and 2 are exactly revisions 0001 and 0002.
LEGACY_TABLE = "schema_version"
LEGACY_REVISIONS = {1: "0001", 2: "0002"}

# pg_advisory_xact_lock key: replicas starting together queue here, and the ones after the
# first find nothing left to apply (docs/deploy.md, "Migrations").
MIGRATION_LOCK_KEY = 7301


class SchemaError(Exception):
    """The database's schema is not one this code can serve; the message says what to do."""


class SchemaOutOfDate(SchemaError):
    """The database is behind this code: run `footage-gateway migrate`."""


class UnknownSchema(SchemaError):
    """The database is at a version this code does not know (made by a newer gateway)."""


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    # env.py runs the revisions on this connection, inside the caller's transaction.
    config.attributes["connection"] = conn
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    # Reading the revisions imports every file in versions/: once per process is enough.
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest revision this code ships."""
    revision = _scripts().get_current_head()
    assert revision is not None, "gateway/migrations/versions has no revisions"
    return revision


def _require_known(at: str | None) -> None:
    known = {script.revision for script in _scripts().walk_revisions()}
    if at is not None and at not in known:
        raise UnknownSchema(
            f"database schema is at revision {at}, which this gateway does not know: "
            "it was migrated by a newer gateway"
        )


def current(conn: Connection) -> str | None:
    """The revision the database is at; None when Alembic has never stamped it."""
    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> list[str]:
    """Adopt a database of the old runner, then apply every pending revision; returns those."""
    # One transaction holds the write lock from its start (SQLite's BEGIN IMMEDIATE, PostgreSQL's
    # advisory lock) and runs every revision: a failure leaves the schema as it was.
    with begin_write(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config = _config(conn)
        _adopt_legacy(conn, config)
        at = current(conn)
        _require_known(at)
        pending = _pending(at)
        if pending:
            command.upgrade(config, "head")
    return pending


def _pending(at: str | None) -> list[str]:
    newest_first = _scripts().iterate_revisions("head", at or "base")
    return [revision.revision for revision in reversed(list(newest_first))]


def _adopt_legacy(conn: Connection, config: Config) -> None:
    """Stamp a database of the old runner at the revision its version matches, drop its table."""
    if not sa.inspect(conn).has_table(LEGACY_TABLE) or current(conn) is not None:
        return
    legacy = sa.table(LEGACY_TABLE, sa.column("version", sa.Integer))
    version = conn.execute(sa.select(sa.func.max(legacy.c.version))).scalar()
    if version is not None:
        revision = LEGACY_REVISIONS.get(int(version))
        if revision is None:
            raise UnknownSchema(
                f"{LEGACY_TABLE} says version {version}, which this gateway does not know: "
                "it was migrated by a newer gateway"
            )
        command.stamp(config, revision)
    # Alembic's version table replaces it; keeping both would make two answers to one question.
    conn.execute(sa.text(f"DROP TABLE {LEGACY_TABLE}"))


def check(engine: Engine) -> None:
    """Raise SchemaOutOfDate (or UnknownSchema) unless the database is at the newest revision."""
    with engine.connect() as conn:
        at = current(conn)
    _require_known(at)
    if at != head():
        raise SchemaOutOfDate(
            f"database schema is at revision {at or 'none'}, this gateway needs {head()}: "
            "run `footage-gateway migrate`"
        )
