"""The periodic check: expire pending requests past their expiry, flag overdue reviews.

Every replica runs it; each expiry and each overdue flag is claimed by a conditional UPDATE,
so of several replicas exactly one writes it (contract §13). Its period is
`[reviews] check_every_seconds` of approvals.toml, read afresh each turn (a policy reload
changes it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from gateway.access_requests.reviews import Reviews
from gateway.access_requests.service import AccessRequests
from gateway.background import spawn

log = structlog.get_logger("gateway.requests")


class Sweeper:
    """One task per process, started with the services and cancelled at shutdown."""

    def __init__(
        self, requests: AccessRequests, reviews: Reviews, every: Callable[[], float]
    ) -> None:
        self.requests = requests
        self.reviews = reviews
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="access-request-sweeper")

    async def once(self) -> tuple[int, int]:
        """One turn: (requests expired, reviews flagged overdue) by this replica."""
        expired = await self.requests.expire_due()
        flagged = await self.reviews.flag_overdue()
        if expired or flagged:
            log.info("access_requests_swept", expired=expired, reviews_flagged=flagged)
        return expired, flagged

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every())  # the period itself, not a wait for anything
            try:
                await self.once()
            except Exception as exc:  # the next turn tries again; nothing is lost meanwhile
                log.error("access_request_sweep_failed", error=str(exc))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
