"""Is this session still live? asked on every play request and between a stream's chunks.

Why a cache, and why one second: a play request is the hot path (ranged reads a player makes
by the hundred), and the answer depends on rows other replicas change (a grant revoked, a
principal suspended, a session ended there). Reading them on every request costs a worker
thread hop and a query per request; keeping what was read for at most `stale` seconds costs a
dict lookup, and still ends playback at the next request within a second of the change on
every replica (contract §12). The clock-dependent part (idle, maximum age, a grant's expiry)
is evaluated on every request against the current time; only the rows are reused. Nothing
here waits on an fsync: the reads see committed rows, and the writes live elsewhere.

A change made on this replica (a session ended here) is forgotten at once (`forget`).

Two things keep the hot path off the worker threads under load. One read per token at a time:
requests that find no fresh entry while a read of that token is under way wait for that read
(which began after the entry they could not use), instead of each starting their own; a
thundering herd of reads would queue for the threads and, being slower, miss the cache more.
And a read ahead: a request that finds an entry past half its life starts a read in the
background and is answered from the entry, so a session in steady use never waits for one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread

from gateway.background import spawn
from gateway.playback.standing import end_reason
from gateway.playback.store import SessionStore, Standing

STALE_SECONDS = 1.0  # how old a cached standing may be: the contract's "within a second"
MAX_ENTRIES = 4096  # beyond this, entries past their second are dropped


@dataclass(slots=True)
class _Entry:
    read_at: float  # the ticker when the read started: a conservative age
    standing: Standing


class Liveness:
    """Standings by token hash, at most `stale` seconds old; see the module docstring."""

    def __init__(
        self,
        store: SessionStore,
        idle_seconds: int,
        ticker: Callable[[], float] = time.monotonic,
        stale: float = STALE_SECONDS,
    ) -> None:
        self.store = store
        self.idle_seconds = idle_seconds
        self.ticker = ticker
        self.stale = stale
        self._entries: dict[str, _Entry] = {}
        self._seen: dict[str, datetime] = {}  # session id → its latest request here
        self._reading: dict[str, asyncio.Task[Standing | None]] = {}  # token hash → its read
        self._forgotten = 0  # bumped by forget: a read begun before it must not be kept

    async def standing(self, token_hash: str) -> Standing | None:
        """The session this token names and its standing; None for no such session."""
        entry = self._entries.get(token_hash)
        if entry is not None:
            age = self.ticker() - entry.read_at
            if age < self.stale:
                if age >= self.stale / 2 and token_hash not in self._reading:
                    self._start_read(token_hash)  # ahead of need, answered from the entry
                return entry.standing
        reading = self._reading.get(token_hash) or self._start_read(token_hash)
        return await asyncio.shield(reading)  # a cancelled waiter leaves the read to the rest

    def _start_read(self, token_hash: str) -> asyncio.Task[Standing | None]:
        reading = spawn(self._read(token_hash), name="playback-liveness")
        self._reading[token_hash] = reading
        # A read ahead that fails is retried by the next request; nobody else is waiting.
        reading.add_done_callback(lambda task: task.cancelled() or task.exception())
        return reading

    async def _read(self, token_hash: str) -> Standing | None:
        started, forgotten = self.ticker(), self._forgotten
        try:
            standing = await anyio.to_thread.run_sync(self.store.standing, token_hash)
        finally:
            if self._reading.get(token_hash) is asyncio.current_task():
                del self._reading[token_hash]  # (after a forget, a newer read may be there)
        # Not cached: a guess (no such session), or a read that may predate a forget.
        if standing is not None and forgotten == self._forgotten:
            self._prune(started)
            self._entries[token_hash] = _Entry(started, standing)
        return standing

    def reason(self, standing: Standing, now: datetime) -> str | None:
        """Why the session cannot serve now (standing.end_reason), or None while it is live."""
        seen = self._seen.get(standing.session.session_id)
        return end_reason(standing, now, self.idle_seconds, seen)

    def seen(self, session_id: str, now: datetime) -> None:
        """A request through the session, here and now (it may not be written yet)."""
        self._seen[session_id] = now

    def forget(self, token_hash: str) -> None:
        """Drop what was read about a session changed here: the next request reads it again."""
        self._forgotten += 1
        self._reading.pop(token_hash, None)  # its waiters still get it; the next read is new
        entry = self._entries.pop(token_hash, None)
        if entry is not None:
            self._seen.pop(entry.standing.session.session_id, None)

    def _prune(self, now: float) -> None:
        if len(self._entries) < MAX_ENTRIES:
            return
        for key in [k for k, e in self._entries.items() if now - e.read_at >= self.stale]:
            entry = self._entries.pop(key)
            self._seen.pop(entry.standing.session.session_id, None)
