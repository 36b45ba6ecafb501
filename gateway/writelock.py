"""One writer at a time on a SQLite file, across the threads and processes of one machine,
handed over the moment it is free.

SQLite serialises writers itself, but a writer that finds the lock taken waits in SQLite's
busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries whatever the holder is
doing. With `serve --workers N` every worker's audit writer and every staff request's
admission (gateway/detection/sqlite_counters.py) take the same write locks hundreds of times a
second, so most would collide and sleep several milliseconds for a lock held a fraction of
one: two workers served fewer ranged reads than one (docs/benchmarks.md). Taking this lock
first, a writer reaches BEGIN IMMEDIATE only when no other gateway writer holds SQLite's: a
thread waits on a threading lock (woken at its release), a process on flock(2) of a file
beside the database, polled every POLL_SECONDS at most; neither sleeps past the release by
more than that. As SQLite's busy timeout does, it gives up after `timeout` seconds: the
caller fails closed (the audit log's 503, the admission's refusal), never hangs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.0002  # the longest a waiting process sleeps between two tries of flock
TIMEOUT_SECONDS = 5.0  # as SQLite's busy_timeout (gateway/db.py)


class WriteLockTimeout(sqlite3.OperationalError):
    """Another writer held the lock for longer than the timeout: what SQLite itself says
    ("database is locked") when its busy timeout runs out, and handled where that is."""


class WriteLock:
    """The lock of one database file; re-entrant in a thread (see `held`)."""

    def __init__(self, database: Path, timeout: float = TIMEOUT_SECONDS) -> None:
        self.path = database.with_name(database.name + ".writelock")
        self.timeout = timeout
        self._thread = threading.RLock()
        self._depth = 0  # how many times the holding thread has entered
        self._fd: int | None = None
        _ALL.add(self)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block. A thread already holding it enters again at no cost
        (SQLite's own lock then decides, as it did before this lock existed)."""
        deadline = time.monotonic() + self.timeout
        if not self._thread.acquire(timeout=self.timeout):
            raise WriteLockTimeout(f"{self.path}: held by another thread for {self.timeout} s")
        try:
            if self._depth == 0:
                self._lock_file(deadline)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _lock_file(self, deadline: float) -> None:
        fd = self._file()
        pause = POLL_SECONDS / 4
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
            if time.monotonic() >= deadline:
                raise WriteLockTimeout(f"{self.path}: held by another process")
            time.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS)

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def _forked(self) -> None:
        """In a new child: nothing held. flock belongs to an open file description, which a
        fork shares, and the forking thread's hold on the RLock is copied too; a worker using
        either would 'hold' its parent's lock. The child opens its own file when it needs it."""
        self._thread = threading.RLock()
        self._depth = 0
        if self._fd is not None:
            os.close(self._fd)  # the child's copy only: the parent's hold stays
            self._fd = None


_ALL: weakref.WeakSet[WriteLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_ALL):
        lock._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


_LOCKS: dict[Path, WriteLock] = {}
_REGISTRY = threading.Lock()


def for_database(database: str | Path) -> WriteLock:
    """The one WriteLock of this process for a database file (by its real path)."""
    path = Path(os.path.realpath(database))
    with _REGISTRY:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = _LOCKS[path] = WriteLock(path)
        return lock
