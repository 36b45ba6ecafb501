"""Sliding-window counters in a SQLite file that every worker process of one machine shares.

`serve --workers N` without FOOTGW_REDIS_URL: the in-process counters would give each worker
its own counts, and a sweep spread over N workers would reach N times the threshold. Here the
counts live in one small file beside the data (`detection-counters.db`), and every admission
is one write transaction: BEGIN IMMEDIATE takes SQLite's write lock before anything is read,
so the check of every threshold and the count are one step across all the workers, as the
Redis Lua script is across replicas (contract §8, "Admission").

Counts are not records: the audit log is. So the file is `synchronous=OFF` (no fsync: a
transaction costs microseconds, not a disk flush), and a crash of the machine may lose recent
counts, exactly as a restart loses the in-process ones. Across machines, use Redis.

Sync code behind the async CounterStore interface: each call runs in a worker thread, on
this process's one connection (a lock serialises the threads; the file lock, the processes:
gateway/writelock.py, which hands it over at once where SQLite's busy handler would sleep).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import anyio.to_thread

from gateway import writelock
from gateway.detection.counters import CounterStoreUnavailable, Gate, Tally

FILE_NAME = "detection-counters.db"
BUSY_TIMEOUT_MS = 5000
PRUNE_EVERY_SECONDS = 60.0  # also drop every key's members past their window (Redis' EXPIRE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    at REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID
"""
_PRUNE = "DELETE FROM counts WHERE key = ? AND at <= ?"
_COUNT = "SELECT COUNT(*) FROM counts WHERE key = ?"
# A member's time only moves forward (ZADD GT in the Redis store).
_UPSERT = (
    "INSERT INTO counts (key, member, at, expires) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key, member) DO UPDATE SET "
    "at = max(at, excluded.at), expires = max(expires, excluded.expires)"
)


class SqliteCounters:
    """CounterStore on one SQLite file shared by the processes of one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pruned_at = 0.0

    async def add(self, tallies: Sequence[Tally]) -> list[int]:
        if not tallies:
            return []
        return await anyio.to_thread.run_sync(self._add, tallies)

    async def admit(self, gates: Sequence[Gate]) -> int | None:
        if not gates:
            return None
        return await anyio.to_thread.run_sync(self._admit, gates)

    async def forget(self, keys: Sequence[str]) -> None:
        if keys:
            await anyio.to_thread.run_sync(self._forget, keys)

    async def check(self) -> None:
        await anyio.to_thread.run_sync(self._check)

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _add(self, tallies: Sequence[Tally]) -> list[int]:
        with self._write() as db:
            counts = []
            for tally in tallies:
                _count_in(db, tally)
                counts.append(_live(db, tally))
            return counts

    def _admit(self, gates: Sequence[Gate]) -> int | None:
        with self._write() as db:
            for index, gate in enumerate(gates):
                if _live(db, gate.tally) >= gate.limit:
                    return index  # nothing counted: the transaction commits no change
            for gate in gates:
                if gate.count:
                    _count_in(db, gate.tally)
            return None

    def _forget(self, keys: Sequence[str]) -> None:
        with self._write() as db:
            db.executemany("DELETE FROM counts WHERE key = ?", [(k,) for k in keys])

    def _check(self) -> None:
        with self._lock:
            try:
                self._connection().execute("SELECT 1").fetchone()
            except sqlite3.Error as exc:
                raise CounterStoreUnavailable(type(exc).__name__) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """This process's connection in a write transaction: BEGIN IMMEDIATE … COMMIT."""
        with self._lock:
            try:
                db = self._connection()
                lock = writelock.for_database(self.path)
                with lock.held():  # raises as SQLite would if the lock never frees
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        yield db
                        self._prune_all(db)
                        db.execute("COMMIT")
                    except BaseException:
                        with suppress(sqlite3.Error):
                            db.execute("ROLLBACK")
                        raise
            except sqlite3.Error as exc:
                raise CounterStoreUnavailable(str(exc)) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    def _prune_all(self, db: sqlite3.Connection) -> None:
        now = time.time()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            db.execute("DELETE FROM counts WHERE expires <= ?", (now,))
            self._pruned_at = now


def _count_in(db: sqlite3.Connection, tally: Tally) -> None:
    db.execute(_UPSERT, (tally.key, tally.member, tally.at, tally.at + tally.window))


def _live(db: sqlite3.Connection, tally: Tally) -> int:
    """The key's members inside the window ending at the tally's time (older ones dropped)."""
    db.execute(_PRUNE, (tally.key, tally.at - tally.window))
    return int(db.execute(_COUNT, (tally.key,)).fetchone()[0])
