"""The relational schema (SQLAlchemy Core) and engine construction for SQLite and PostgreSQL.

Every table the gateway keeps is described here, for the queries; the revisions in
gateway/migrations/versions/ create them, and tests/test_migrations.py checks the two agree.
Modules own their queries; this module owns only the shapes and the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway import writelock

metadata = sa.MetaData()

# The append-only, hash-chained audit log (contract §7). `seq` is dense and assigned by the
# writer under a lock, so the chain never forks even with several replicas.
audit_events = sa.Table(
    "audit_events",
    metadata,
    # On SQLite, INTEGER: the rowid itself, not a second B-tree beside it (revision 0008).
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("request_id", sa.String(64)),
    sa.Column("principal", sa.String(256)),
    sa.Column("customer_id", sa.String(64)),
    sa.Column("decision", sa.String(8)),
    sa.Column("grant_id", sa.String(40)),
    sa.Column("body", sa.Text, nullable=False),  # canonical JSON of the event without hash
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
# Only indexes a query reads: each one is paid for by every append (revision 0008).
sa.Index("ix_audit_principal_seq", audit_events.c.principal, audit_events.c.seq)
sa.Index("ix_audit_customer_seq", audit_events.c.customer_id, audit_events.c.seq)
sa.Index("ix_audit_ts", audit_events.c.ts)
sa.Index("ix_audit_grant", audit_events.c.grant_id)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),
)

cameras = sa.Table(
    "cameras",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("camera_id", sa.String(64), primary_key=True),
    sa.Column("zone", sa.String(16), nullable=False),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("grant_id", sa.String(40), primary_key=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("grantee", sa.String(300), nullable=False),  # a sub, or role:<role>
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("cameras", sa.Text, nullable=False),  # JSON list, or ["*"]
    sa.Column("footage_from", sa.String(32), nullable=False),
    sa.Column("footage_until", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("ticket", sa.String(200), nullable=False),
    sa.Column("include_private", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("revoked_at", sa.String(32)),
    sa.Column("revoked_by", sa.String(256)),
    # Revision 0005: the access request a grant answers, and who approved it (contract §13).
    sa.Column("request_id", sa.String(40)),
    sa.Column("approval", sa.String(16), nullable=False, server_default="customer"),
)
# The grant check looks up "grants to this grantee on this customer's footage": one index probe.
sa.Index("ix_grants_lookup", grants.c.grantee, grants.c.customer_id, grants.c.expires_at)
sa.Index("ix_grants_customer", grants.c.customer_id, grants.c.created_at)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("flag_id", sa.String(40), primary_key=True),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("window_key", sa.String(120), nullable=False),
    sa.Column("event_ids", sa.Text, nullable=False),  # JSON list
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("resolution", sa.Text),
    sa.Column("resolved_by", sa.String(256)),
    sa.Column("resolved_at", sa.String(32)),
    # One flag per principal, rule and window, however many requests cross the threshold.
    sa.UniqueConstraint("principal", "rule", "window_key", name="uq_flag_window"),
)
sa.Index("ix_flags_status", flags.c.status, flags.c.created_at)

# Access requests (revision 0005, contract §13): staff ask, the customer (or staff approvers,
# policies/approvals.toml) answer. `state` moves only from pending, by one conditional UPDATE.
access_requests = sa.Table(
    "access_requests",
    metadata,
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
sa.Index("ix_access_requests_customer", access_requests.c.customer_id, access_requests.c.created_at)
sa.Index("ix_access_requests_requester", access_requests.c.requester, access_requests.c.created_at)
sa.Index("ix_access_requests_state", access_requests.c.state, access_requests.c.expires_at)

# One row per staff approval of a request: distinct approvers by the primary key.
access_request_approvals = sa.Table(
    "access_request_approvals",
    metadata,
    sa.Column("request_id", sa.String(40), primary_key=True),
    sa.Column("approver", sa.String(256), primary_key=True),
    sa.Column("approved_at", sa.String(32), nullable=False),
)

# Break-glass reviews (revision 0005): opened by a use, closed by a security analyst.
reviews = sa.Table(
    "reviews",
    metadata,
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
sa.Index("ix_reviews_state", reviews.c.state, reviews.c.due_at)
sa.Index("ix_reviews_subject", reviews.c.subject, reviews.c.customer_id, reviews.c.state)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("sub", sa.String(256), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),  # active | suspended
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("changed_at", sa.String(32), nullable=False),
    sa.Column("changed_by", sa.String(256), nullable=False),
)

# Facts about the deployment as a whole, shared by every replica on this database: the
# `cluster_id` (made by revision 0002) names this deployment's Redis channels (gateway/cluster/).
cluster_info = sa.Table(
    "cluster_info",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)


# Sign-in through the identity provider (contract §15, gateway/signin/). A login in progress:
# keyed by the sha256 of its `state`, bound to the browser that began it by the sha256 of a
# cookie, used at most once (the callback deletes the row it reads).
oidc_logins = sa.Table(
    "oidc_logins",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("binding_hash", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("return_to", sa.String(512), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
sa.Index("ix_oidc_logins_created", oidc_logins.c.created_at)

# A console session: keyed by the sha256 of the cookie's value (the value itself is never
# stored), holding the provider's tokens server-side until the access token expires.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("session_hash", sa.String(64), primary_key=True),
    sa.Column("sub", sa.String(256), nullable=False),
    sa.Column("access_token", sa.Text, nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
sa.Index("ix_console_sessions_expires", console_sessions.c.expires_at)
# Playback sessions (contract §12): one authorized view of one clip, reached by an opaque token
# that is kept only as its SHA-256. `state` goes from `live` to `ended` once, by a conditional
# UPDATE, so with several replicas exactly one of them writes the session's playback.ended.
playback_sessions = sa.Table(
    "playback_sessions",
    metadata,
    sa.Column("session_id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("request_id", sa.String(64), nullable=False),  # the POST's, as in its decision
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("roles", sa.Text, nullable=False),  # JSON list
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("clip_id", sa.String(80), nullable=False),
    sa.Column("purpose", sa.String(32)),
    sa.Column("justification", sa.Text),
    sa.Column("grant_id", sa.String(40)),
    sa.Column("clip_size", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),  # the hard maximum age
    sa.Column("last_request_at", sa.String(32)),
    sa.Column("requests", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("bytes_sent", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("state", sa.String(8), nullable=False),  # live | ended | void
    sa.Column("ended_at", sa.String(32)),
    sa.Column("ended_reason", sa.String(24)),
    sa.Column("coverage", sa.Float),  # set when it ends
)
sa.Index("ix_playback_state", playback_sessions.c.state, playback_sessions.c.started_at)
sa.Index("ix_playback_principal", playback_sessions.c.principal, playback_sessions.c.state)
sa.Index("ix_playback_customer", playback_sessions.c.customer_id, playback_sessions.c.state)
sa.Index("ix_playback_request", playback_sessions.c.request_id)

# Every request through a playback session, written in batches (gateway/playback/recorder.py):
# the byte span it sent (first..last, inclusive), for the session's coverage and evidence.
playback_requests = sa.Table(
    "playback_requests",
    metadata,
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
    sa.Column("bytes_sent", sa.BigInteger),  # null: S3 or nginx sent them (not known here)
    sa.Column("delivered_by", sa.String(8)),
)
sa.Index("ix_playback_requests_session", playback_requests.c.session_id, playback_requests.c.id)
# The transactional outbox (contract §14): a notification is written in the transaction of the
# event that causes it, so it exists iff that event committed; a worker in every replica claims
# due rows (claimed_by/claimed_until: a lease) and posts them, signed, to their webhook.
# `next_attempt_at` is NULL once a row is settled (delivered, given up, or never to be sent).
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),  # the webhook-id
    sa.Column("destination", sa.String(16), nullable=False),  # customer | alert
    sa.Column("customer_id", sa.String(64)),  # NULL for security alerts
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON object
    sa.Column("dedupe_key", sa.String(120), unique=True),  # once per grant, and the like
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.String(32)),
    sa.Column("delivered_at", sa.String(32)),
    sa.Column("gave_up_at", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", sa.String(32)),
)
sa.Index("ix_notifications_due", notifications.c.next_attempt_at)
sa.Index("ix_notifications_customer", notifications.c.customer_id, notifications.c.seq)


@contextmanager
def reading(engine: Engine, conn: Connection | None = None) -> Iterator[Connection]:
    """`conn` when the caller holds one (several reads, one checkout), else a fresh connection."""
    if conn is not None:
        yield conn
        return
    with engine.connect() as fresh:
        yield fresh


def normalise_url(url: str) -> str:
    """Use psycopg 3 for postgresql:// URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


SQLITE_POOL_SIZE = 40
SQLITE_CACHE_KIB = 256  # per connection (PRAGMA cache_size, negative: KiB)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the pragmas that make SQLite durable and concurrent enough to serve."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _ensure_parent_dir(url)
        if ":memory:" not in url and "mode=memory" not in url:
            # One pooled connection per worker thread (anyio's default is 40). SQLAlchemy's default
            # (5 + 10 overflow) made concurrent requests open and close connections, each paying the
            # pragmas and a schema read, and queue for the rest (docs/benchmarks.md).
            kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
            kwargs.setdefault("max_overflow", 10)
            # Hand out the connection returned last. The audit writer checks one out per batch:
            # first in, first out gave it the least recently used one, whose page cache every
            # commit since had made stale, and each batch read its index pages in again (more
            # system time per batch, docs/benchmarks.md).
            kwargs.setdefault("pool_use_lifo", True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 5.0}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _ensure_parent_dir(url: str) -> None:
    """SQLite creates the file but not its folder: make the data dir on first use."""
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, issue BEGIN, so writers can ask for BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; synchronous=FULL fsyncs every commit,
    # which is what "durably committed before the first byte" means.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Each pooled connection keeps a private page cache (2 MiB by default), and the pool holds
    # up to SQLITE_POOL_SIZE + overflow of them: as the log grew, every cache filled and the
    # process grew with it (docs/security.md §7). The OS page cache already holds the file for
    # every connection alike, so a small private cache bounds memory at little cost.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A writer that reads the chain head and then appends must hold the write lock from the
    # start, or two processes could read the same head and fork the chain.
    immediate = conn.get_execution_options().get(WRITE_LOCK_OPTION, False)
    # Straight to the driver: the same statement, without a trip through SQLAlchemy's execution
    # machinery, which cost more than the three lookups it starts on every request
    # (docs/benchmarks.md).
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITE_LOCK_OPTION = "footgw_write_lock"
AUDIT_LOCK_KEY = 7302  # pg_advisory_xact_lock key that serialises audit appends across replicas


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock for the audit chain from its start
    (on a SQLite file, taken after this machine's other writers let go: gateway/writelock.py)."""
    locking = engine.execution_options(**{WRITE_LOCK_OPTION: True})
    with sqlite_write_lock(engine), locking.begin() as conn:
        yield conn


def sqlite_write_lock(engine: Engine) -> AbstractContextManager[None]:
    """The machine-wide writer's lock of the engine's SQLite file; nothing for PostgreSQL or an
    in-memory database (one connection's own)."""
    url = engine.url
    database = url.database or ""
    if (
        url.get_backend_name() != "sqlite"
        or database in ("", ":memory:")
        or "memory" in str(url.query.get("mode", ""))
    ):
        return nullcontext()
    return writelock.for_database(database).held()


@contextmanager
def writing(engine: Engine, conn: Connection | None = None) -> Iterator[Connection]:
    """`conn` when the caller holds a transaction (a change and its audit event commit together,
    gateway/audit/atomic.py), else a write transaction of its own (begin_write)."""
    if conn is not None:
        yield conn
        return
    with begin_write(engine) as fresh:
        yield fresh


def lock_audit_chain(conn: Connection) -> None:
    """On PostgreSQL, serialise chain appends across every replica until the transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def create_relaxed_engine(engine: Engine) -> Engine:
    """An engine on `engine`'s database whose commits do not wait for an fsync.

    For records whose loss in a power cut only fails closed or loses a counter: playback
    sessions (a lost one is a URL that stops working) and the requests made through them
    (summed up durably in the audit log when the session ends). SQLite in WAL mode with
    synchronous=NORMAL stays consistent after a crash and only loses the last commits;
    PostgreSQL's synchronous_commit=off promises the same. An in-memory database is one
    connection's own: it is used as it is.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or "memory" in str(url.query.get("mode", "")):
            return engine
        relaxed = create_db_engine(url.render_as_string(hide_password=False), pool_size=8)
        sa.event.listen(relaxed, "connect", _sqlite_relaxed)
        return relaxed
    relaxed = sa.create_engine(url, pool_size=4, max_overflow=8, pool_pre_ping=True)
    sa.event.listen(relaxed, "connect", _postgres_relaxed)  # the URL's own options stay
    return relaxed


def _postgres_relaxed(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit = off")  # for the session, every transaction
    cursor.close()
    dbapi_connection.commit()


def _sqlite_relaxed(dbapi_connection: Any, _record: Any) -> None:
    # After _sqlite_pragmas (listeners run in the order they were added): WAL stays on.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
