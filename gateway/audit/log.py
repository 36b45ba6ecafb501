"""The audit log as the request flow sees it: `await append(event)` returns once it is durable.

Group commit: appends that arrive while a batch is being written wait together and go in
the next transaction, so under load many requests share one fsync, while a lone request
still waits for exactly one. Every committed event is also one structured log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio.to_thread
import structlog

from gateway.audit.events import Event
from gateway.audit.store import AuditStore
from gateway.errors import AuditUnavailable, GatewayError

log = structlog.get_logger("gateway.audit")

CommitHook = Callable[[Sequence[Event]], Awaitable[None]]
T = TypeVar("T")
MAX_BATCH = 512


class AuditLog:
    """Durable, ordered appends to the hash chain, shared by every request of one process."""

    def __init__(self, store: AuditStore, *, timeout: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self._pending: list[tuple[Event, asyncio.Future[Event]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._hooks: list[CommitHook] = []
        self._closing = False

    def on_commit(self, hook: CommitHook) -> None:
        """Call hook with each committed batch (checkpoints); its failures are logged only."""
        self._hooks.append(hook)

    async def append(self, event: Event) -> Event:
        """Commit one event durably and return it sealed; AuditUnavailable if that fails."""
        return await self._wait(self._queue([event])[0])  # one future: no gather per request

    def _queue(self, events: Sequence[Event]) -> list[asyncio.Future[Event]]:
        self._ensure_writer()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Event]] = []
        for event in events:
            future: asyncio.Future[Event] = loop.create_future()
            self._pending.append((event, future))
            futures.append(future)
        self._wake.set()
        return futures

    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        """Commit events together, in order, in one transaction."""
        return list(await self._wait(asyncio.gather(*self._queue(events))))

    async def _wait(self, commit: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await commit
        except TimeoutError as exc:
            # The batch may still land later; the caller fails closed all the same.
            raise AuditUnavailable("The audit log did not answer in time.") from exc

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Event, asyncio.Future[Event]]]) -> None:
        events = [event for event, _ in batch]
        try:
            sealed = await anyio.to_thread.run_sync(self._append_and_log, events)
        except Exception as exc:  # any failure of the store is "not durable": fail closed
            error = exc if isinstance(exc, GatewayError) else AuditUnavailable(str(exc))
            log.error("audit_write_failed", error=str(exc), events=len(events))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for event, (_, future) in zip(sealed, batch, strict=True):
            if not future.done():
                future.set_result(event)
        await self._run_hooks(sealed)

    def _append_and_log(self, events: list[Event]) -> list[Event]:
        """Commit, then write each event's log line, in the writer's worker thread.

        On the event loop, rendering and printing two lines per request held up every other
        request (issue 7). The lines still come after the commit and before anyone is answered.
        """
        sealed = self.store.append_batch(events)
        for event in sealed:
            try:
                log.info("audit_event", **event)
            except Exception:  # noqa: S112 - the database is the record; a log line is a copy
                continue
        return sealed

    async def _run_hooks(self, sealed: Sequence[Event]) -> None:
        for hook in self._hooks:
            try:
                await hook(sealed)
            except Exception as exc:  # a hook never undoes a commit or blocks a request
                log.error("audit_hook_failed", hook=getattr(hook, "__name__", "?"), error=str(exc))

    async def close(self) -> None:
        """Stop the writer once everything already appended is written."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
