"""Ends the sessions nobody is asking about any more: idle, past their maximum age, or whose
grant or principal no longer stands (a request through one would end it too; this sweep
writes the playback.ended of those that get no further request).

Every replica sweeps; the transition decides which one writes the event (ending.py).

The same sweep deletes the request records of sessions ended more than KEEP_REQUESTS ago: a
player makes hundreds of requests an hour, one row each, and once a session has ended its row
and its playback.ended event hold what they add up to (contract §12). An hour's grace lets the
last batches of an ended session land and be read (its coverage is computed at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
import structlog

from gateway.background import spawn
from gateway.playback.ending import Ender
from gateway.playback.standing import end_reason
from gateway.playback.store import SessionStore

log = structlog.get_logger("gateway.playback")

KEEP_REQUESTS = timedelta(hours=1)  # after its session ended, a request record is deleted


class Reaper:
    """Sweeps live sessions every `interval` seconds (spawned by `start`)."""

    def __init__(
        self,
        store: SessionStore,
        ender: Ender,
        idle_seconds: int,
        clock: Callable[[], datetime],
        interval: float,
    ) -> None:
        self.store = store
        self.ender = ender
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """End every live session that can no longer serve; how many this sweep ended."""
        standings = await anyio.to_thread.run_sync(self.store.live_standings)
        ended = 0
        for standing in standings:
            now = self.clock()
            reason = end_reason(standing, now, self.idle_seconds)
            if reason is not None and await self.ender.end(standing.session, reason, now):
                ended += 1
        return ended

    async def purge(self) -> int:
        """Delete a batch of request records of sessions ended over KEEP_REQUESTS ago."""
        before = self.clock() - KEEP_REQUESTS
        return await anyio.to_thread.run_sync(self.store.purge_requests, before)

    async def _run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.sweep()
                await self.purge()
            except Exception as exc:  # the next sweep tries again; requests end sessions too
                log.error("playback_sweep_failed", error=str(exc))

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="playback-reaper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
