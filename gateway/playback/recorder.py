"""Every request through a playback session, written in batches that no request waits for.

The view was decided and audited when the session started (its access.decision); a play
request only adds to what that view covered. So `note` queues and returns at once, and one
writer task commits whatever has queued since its last commit, in one transaction on the
relaxed engine (gateway/db.py create_relaxed_engine). The writer lingers LINGER_SECONDS after
the first request of a batch, so under load a commit carries the requests of that whole
moment (a player's range requests come by the dozen) instead of the few queued since the last
commit: one transaction a request would cost more than the request itself. (A new session's
row is not written here: it commits with its start's access.decision, playback/flow.py.)
`flush` waits for everything queued so far (a session about to end sums up its requests;
shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio.to_thread
import structlog

from gateway.background import spawn
from gateway.playback.store import PlayRecord, SessionStore

log = structlog.get_logger("gateway.playback")

MAX_BATCH = 2048
LINGER_SECONDS = 0.05  # how long a batch of play requests gathers before it is written


class PlayLog:
    """Queues PlayRecords and writes them in batches (module docstring)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._pending: list[PlayRecord] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # the close waits: write without lingering
        self._lock = asyncio.Lock()  # one batch in the database at a time, in order
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.lost = 0  # requests whose batch could not be written (logged, counted)

    def note(self, record: PlayRecord) -> None:
        """Queue one request; never waits and never raises."""
        self._pending.append(record)
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = spawn(self._write_loop(), name="playback-recorder")
        self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far, and wait for it."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._write(batch)

    async def _write_loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if not self._urgent.is_set() and len(self._pending) < MAX_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), LINGER_SECONDS)
            self._urgent.clear()
            await self.flush()

    async def _write(self, batch: list[PlayRecord]) -> None:
        try:
            await anyio.to_thread.run_sync(self.store.record, batch)
        except Exception as exc:  # the requests were answered: say loudly what was not kept
            self.lost += len(batch)
            log.error("playback_requests_not_recorded", requests=len(batch), error=str(exc))

    async def close(self) -> None:
        """Write what is queued and stop the writer."""
        self._closing = True
        self._wake.set()
        self._urgent.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self.flush()
