"""Alembic migrations (gateway/migrations/): databases of the old runner end where fresh ones do.

The old runner's version 1 was `metadata.create_all()` of whatever gateway/db.py held, so the
frozen copy below is that schema as the last release of the old runner made it (with
`schema_version` and the since-dropped `grants.use_count`). Each test runs on SQLite, and on
PostgreSQL when FOOTGW_TEST_DATABASE_URL is set (a fresh schema per test, tests/support/cluster.py).
"""

from __future__ import annotations

import contextlib
import fnmatch
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.audit.events import new_event
from gateway.audit.store import AuditStore
from gateway.audit.verify import verify_rows
from gateway.cluster.identity import read_cluster_id
from gateway.db import begin_write, create_db_engine, metadata
from gateway.types import EventType
from tests.support.cluster import fresh_schema, require_postgres

ALL_REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008"]


def old_runner_metadata(*, with_cluster_info: bool = True) -> sa.MetaData:
    """gateway/db.py's tables as the old runner's `create_all` made them (frozen; do not edit)."""
    legacy = sa.MetaData()
    audit_events = sa.Table(
        "audit_events",
        legacy,
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
    sa.Index("ix_audit_principal_seq", audit_events.c.principal, audit_events.c.seq)
    sa.Index("ix_audit_customer_seq", audit_events.c.customer_id, audit_events.c.seq)
    sa.Index("ix_audit_ts", audit_events.c.ts)
    sa.Index("ix_audit_request", audit_events.c.request_id)
    sa.Index("ix_audit_grant", audit_events.c.grant_id)
    sa.Table(
        "audit_checkpoints",
        legacy,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
    )
    sa.Table(
        "cameras",
        legacy,
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("zone", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
    )
    grants = sa.Table(
        "grants",
        legacy,
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
    sa.Index("ix_grants_lookup", grants.c.grantee, grants.c.customer_id, grants.c.expires_at)
    sa.Index("ix_grants_customer", grants.c.customer_id, grants.c.created_at)
    flags = sa.Table(
        "flags",
        legacy,
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
    sa.Index("ix_flags_status", flags.c.status, flags.c.created_at)
    sa.Table(
        "principals",
        legacy,
        sa.Column("sub", sa.String(256), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("changed_at", sa.String(32), nullable=False),
        sa.Column("changed_by", sa.String(256), nullable=False),
    )
    if with_cluster_info:
        sa.Table(
            "cluster_info",
            legacy,
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("value", sa.String(200), nullable=False),
        )
    sa.Table(
        "schema_version",
        legacy,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("applied_at", sa.String(32), nullable=False),
    )
    return legacy


OLD_CLUSTER_ID = "0123456789abcdef0123456789abcdef"

GRANT_ROW = {
    "grant_id": "g-1",
    "customer_id": "c1",
    "grantee": "role:support_agent",
    "purpose": "support_ticket",
    "cameras": '["*"]',
    "footage_from": "2026-01-01T00:00:00Z",
    "footage_until": "2026-01-02T00:00:00Z",
    "expires_at": "2026-02-01T00:00:00Z",
    "ticket": "T-1",
    "include_private": True,
    "created_at": "2026-01-01T00:00:00Z",
    "created_by": "admin",
}


def make_old_runner_database(
    engine: Engine, version: int, *, with_cluster_info: bool = True
) -> None:
    """What the old runner left at `version`: version 2 also made the cluster id."""
    legacy = old_runner_metadata(with_cluster_info=with_cluster_info)
    with engine.begin() as conn:
        legacy.create_all(conn)
        for v in range(1, version + 1):
            conn.execute(
                legacy.tables["schema_version"].insert(),
                {"version": v, "applied_at": "2026-01-01T00:00:00+00:00"},
            )
        if version >= 2:
            conn.execute(
                legacy.tables["cluster_info"].insert(),
                {"name": "cluster_id", "value": OLD_CLUSTER_ID},
            )
        conn.execute(legacy.tables["grants"].insert(), {**GRANT_ROW, "use_count": 0})


@pytest.fixture(params=["sqlite", "postgresql"])
def new_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """A factory of engines on empty databases of one dialect, all disposed after the test."""
    if request.param == "postgresql":
        require_postgres()
    engines: list[Engine] = []
    with contextlib.ExitStack() as stack:

        def make() -> Engine:
            if request.param == "sqlite":
                url = f"sqlite:///{tmp_path / f'db{len(engines)}.sqlite'}"
            else:
                url = stack.enter_context(fresh_schema(require_postgres()))
            engine = create_db_engine(url)
            engines.append(engine)
            return engine

        yield make
        for engine in engines:
            engine.dispose()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Tables, columns (type, nullability, default), keys, indexes and unique constraints."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        columns = [
            (c["name"], str(c["type"]), c["nullable"], c.get("default"))
            for c in inspector.get_columns(name)
        ]
        indexes = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(name)
        )
        uniques = sorted(
            (u["name"] or "", tuple(u["column_names"]))
            for u in inspector.get_unique_constraints(name)
        )
        primary_key = tuple(inspector.get_pk_constraint(name)["constrained_columns"])
        tables[name] = {
            "columns": sorted(columns),
            "primary_key": primary_key,
            "indexes": indexes,
            "uniques": uniques,
        }
    return tables


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current(conn)


@pytest.mark.parametrize(
    ("version", "with_cluster_info", "pending"),
    [
        (2, True, ALL_REVISIONS[2:]),
        (1, True, ALL_REVISIONS[1:]),
        # The first release's version 1 had no cluster_info table yet.
        (1, False, ALL_REVISIONS[1:]),
    ],
)
def test_an_old_runner_database_migrates_to_the_fresh_schema(
    new_engine, version, with_cluster_info, pending
):
    fresh, old = new_engine(), new_engine()
    assert migrations.migrate(fresh) == ALL_REVISIONS
    make_old_runner_database(old, version, with_cluster_info=with_cluster_info)

    assert migrations.migrate(old) == pending
    assert schema_of(old) == schema_of(fresh)
    assert "schema_version" not in schema_of(old)
    assert "use_count" not in {c for c, *_ in schema_of(old)["grants"]["columns"]}
    assert revision_of(old) == revision_of(fresh) == migrations.head()
    migrations.check(old)
    assert migrations.migrate(old) == []


def test_adoption_keeps_the_rows_and_the_cluster_id(new_engine):
    old = new_engine()
    make_old_runner_database(old, 2)
    migrations.migrate(old)
    # Replicas already on the old schema listen on the channel named by this id: keep it.
    assert read_cluster_id(old) == OLD_CLUSTER_ID
    with old.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM grants")).mappings().one()
    # Revision 0005: a grant made before access requests answers none, and its customer made it.
    new_columns = {"request_id": None, "approval": "customer"}
    assert dict(row) == {**GRANT_ROW, "revoked_at": None, "revoked_by": None, **new_columns}


def test_a_version_1_database_gets_a_cluster_id(new_engine):
    old = new_engine()
    make_old_runner_database(old, 1)
    migrations.migrate(old)
    assert len(read_cluster_id(old)) == 32


def test_gateway_db_describes_what_the_revisions_make(new_engine):
    engine = new_engine()
    migrations.migrate(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_check_refuses_an_unmigrated_database_in_one_line_naming_migrate(new_engine):
    engine = new_engine()
    with pytest.raises(migrations.SchemaOutOfDate, match="run `footage-gateway migrate`") as empty:
        migrations.check(engine)
    assert "\n" not in str(empty.value)
    make_old_runner_database(engine, 2)
    with pytest.raises(migrations.SchemaOutOfDate, match="footage-gateway migrate"):
        migrations.check(engine)


def test_an_old_runner_version_this_code_does_not_know_is_refused_untouched(new_engine):
    engine = new_engine()
    make_old_runner_database(engine, 2)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (3, 'later')"))
    with pytest.raises(migrations.UnknownSchema, match="version 3"):
        migrations.migrate(engine)
    # The refusal rolled back: still the old runner's database, not half adopted.
    assert "schema_version" in schema_of(engine)
    assert revision_of(engine) is None


def test_a_database_from_a_newer_gateway_is_refused(new_engine):
    engine = new_engine()
    migrations.migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrations.UnknownSchema, match=r"9999.*newer gateway"):
        migrations.check(engine)
    with pytest.raises(migrations.UnknownSchema, match="9999"):
        migrations.migrate(engine)


def test_the_revisions_ship_inside_the_package():
    package = Path(migrations.__file__).parents[1]
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["gateway"]
    scripts = sorted((package / "migrations" / "versions").glob("*.py"))
    # Sorted: 0004 (playback) was re-chained after 0005 (access requests) at merge.
    assert [p.name[:4] for p in scripts] == sorted(ALL_REVISIONS)
    for script in scripts:
        relative = script.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data), relative


def test_0008_keeps_the_audit_chain_and_makes_seq_the_rowid_on_sqlite(new_engine):
    old = new_engine()
    make_old_runner_database(old, 2)
    store = AuditStore(old)
    try:
        store.append_batch(
            [new_event(EventType.ACCESS_DECISION, request_id=f"r{i}") for i in range(5)]
        )
    finally:
        store.close()
    before = list(AuditStore(old).iter_rows())
    migrations.migrate(old)
    after_store = AuditStore(old)
    try:
        assert list(after_store.iter_rows()) == before
        assert verify_rows(after_store.iter_rows()).ok
        # The append path still works on the copied table, carrying on from its head.
        assert after_store.append_batch([new_event(EventType.ACCESS_DECISION)])[0]["seq"] == 6
    finally:
        after_store.close()
    audit = schema_of(old)["audit_events"]
    assert {name for name, *_ in audit["indexes"]} == {
        "ix_audit_principal_seq",
        "ix_audit_customer_seq",
        "ix_audit_ts",
        "ix_audit_grant",
    }
    assert audit["uniques"] == []
    if old.dialect.name == "sqlite":
        with old.connect() as conn:
            # An INTEGER PRIMARY KEY is the rowid: no second B-tree (no autoindex) to keep.
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM audit_events WHERE rowid = seq")
                ).scalar()
                == 6
            )
            listed = conn.execute(sa.text("PRAGMA index_list(audit_events)")).all()
            assert not [row for row in listed if str(row[1]).startswith("sqlite_autoindex")]


def test_0008_downgrades_to_the_old_audit_table(new_engine):
    engine = new_engine()
    migrations.migrate(engine)
    store = AuditStore(engine)
    try:
        store.append_batch([new_event(EventType.ACCESS_DECISION) for _ in range(3)])
        rows = list(store.iter_rows())
    finally:
        store.close()
    with begin_write(engine) as conn:
        command.downgrade(migrations._config(conn), "0007")
    audit = schema_of(engine)["audit_events"]
    assert ("ix_audit_request", ("request_id",), False) in audit["indexes"]
    unique_event_id = [u for u in audit["uniques"] if u[1] == ("event_id",)] or [
        i for i in audit["indexes"] if i[1] == ("event_id",) and i[2]
    ]
    assert unique_event_id
    assert list(AuditStore(engine).iter_rows()) == rows
    assert migrations.migrate(engine) == ["0008"]
