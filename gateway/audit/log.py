"""The audit log as the request flow sees it: `await append(event)` returns once it is durable.

Group commit: appends that arrive while a batch is being written wait together and go in
the next transaction, so under load many requests share one fsync, while a lone request
still waits for exactly one. Every committed event is also one structured log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import anyio.to_thread
import structlog

from gateway.audit.atomic import Change, EventOf, EventsOf, commit_with_event, commit_with_events
from gateway.audit.events import Event
from gateway.audit.store import AuditStore, before_commit
from gateway.background import spawn
from gateway.errors import AuditUnavailable, GatewayError
from gateway.logging_setup import log_each, render_lines, write_lines

log = structlog.get_logger("gateway.audit")

CommitHook = Callable[[Sequence[Event]], Awaitable[None]]
MAX_BATCH = 512
AUDIT_EVENT = "audit_event"  # the structured log's event name for each committed audit event
# How late past its deadline a waiting append may be failed: the watchdog wakes at most this
# often, however many appends wait on a stuck store (each wake looks at all of them).
DEADLINE_SLACK = 0.05

# An appended event, the future its caller awaits, and the loop time its caller stops waiting.
_Waiter = tuple[Event, asyncio.Future[Event], float]
T = TypeVar("T")


class AuditLog:
    """Durable, ordered appends to the hash chain, shared by every request of one process."""

    def __init__(self, store: AuditStore, *, timeout: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        self._pending: list[_Waiter] = []
        self._writing: list[_Waiter] = []  # the batch in the store right now
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None  # fails appends past their deadline
        self._watchdog_at = 0.0  # the loop time it is armed for
        self._renderer: ThreadPoolExecutor | None = None  # renders log lines during COMMIT
        self._hooks: list[CommitHook] = []
        self._closing = False

    def on_commit(self, hook: CommitHook) -> None:
        """Call hook with each committed batch (checkpoints); its failures are logged only."""
        self._hooks.append(hook)

    async def append(self, event: Event) -> Event:
        """Commit one event durably and return it sealed; AuditUnavailable if that fails."""
        return await self._queue([event])[0]  # one future: no gather per request

    async def commit_with(self, change: Change[T], event_of: EventOf[T]) -> tuple[T, Event | None]:
        """Make an administrative change and append its event in one transaction (atomic.py).

        Not through the group-commit queue: a refused change must not fail the batch it would
        share. Its answer waits for the transaction's outcome (lock waits are bounded by the
        timeout), so AuditUnavailable here means nothing changed and no event was written.
        """
        engine = self.store.engine
        result, sealed = await anyio.to_thread.run_sync(
            lambda: commit_with_event(engine, change, event_of, lock_timeout=self.timeout)
        )
        if sealed is not None:
            with contextlib.suppress(Exception):  # a log line is a copy: it never undoes a commit
                log_each(AUDIT_EVENT, [sealed])
            await self._run_hooks([sealed])
        return result, sealed

    async def commit_with_all(
        self, change: Change[T], events_of: EventsOf[T]
    ) -> tuple[T, list[Event]]:
        """commit_with for a change recorded as several events, in one transaction."""
        engine = self.store.engine
        result, sealed = await anyio.to_thread.run_sync(
            lambda: commit_with_events(engine, change, events_of, lock_timeout=self.timeout)
        )
        if sealed:
            with contextlib.suppress(Exception):
                log_each(AUDIT_EVENT, sealed)
            await self._run_hooks(sealed)
        return result, sealed

    def _queue(self, events: Sequence[Event]) -> list[asyncio.Future[Event]]:
        loop = asyncio.get_running_loop()
        self._ensure_writer(loop)
        deadline = loop.time() + self.timeout
        futures: list[asyncio.Future[Event]] = []
        for event in events:
            future: asyncio.Future[Event] = loop.create_future()
            self._pending.append((event, future, deadline))
            futures.append(future)
        if self._watchdog is None or deadline < self._watchdog_at:  # e.g. a shorter timeout
            self._arm_watchdog(loop, deadline)
        self._wake.set()
        return futures

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = loop.call_at(when, self._expire)
        self._watchdog_at = when

    def _expire(self) -> None:
        """Fail every append past its deadline; wake again for the next one still waiting.

        One timer for all waiting appends rather than asyncio.timeout() per append: a timer per
        request cost the event loop more than the rest of append() (docs/benchmarks.md). A batch
        that misses the deadline may still land later; its callers fail closed all the same.
        """
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        upcoming: float | None = None
        for _, future, deadline in (*self._writing, *self._pending):
            if future.done():
                continue
            if deadline <= now:
                future.set_exception(AuditUnavailable("The audit log did not answer in time."))
            elif upcoming is None or deadline < upcoming:
                upcoming = deadline
        if upcoming is not None:
            self._arm_watchdog(loop, max(upcoming, now + DEADLINE_SLACK))

    def _ensure_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._writer is None or self._writer.done():
            self._writer = spawn(self._write_loop(), name="audit-writer")

    async def _write_loop(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._commit(batch)

    async def _commit(self, batch: list[_Waiter]) -> None:
        events = [event for event, _, _ in batch]
        self._writing = batch
        try:
            sealed = await anyio.to_thread.run_sync(self._append_and_log, events)
        except Exception as exc:  # any failure of the store is "not durable": fail closed
            error = exc if isinstance(exc, GatewayError) else AuditUnavailable(str(exc))
            log.error("audit_write_failed", error=str(exc), events=len(events))
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        finally:
            self._writing = []
        for event, (_, future, _) in zip(sealed, batch, strict=True):
            if not future.done():
                future.set_result(event)
        await self._run_hooks(sealed)

    def _append_and_log(self, events: list[Event]) -> list[Event]:
        """Commit, then write each event's log line, in the writer's worker thread.

        On the event loop, rendering and printing two lines per request held up every other request
        (docs/benchmarks.md). The lines are rendered by a helper thread while the COMMIT waits on
        the disk, and leave in one write once it returned: still after the commit and before anyone
        is answered.
        """
        lines = _BatchLines(self._line_renderer())
        with before_commit(lines.render):
            sealed = self.store.append_batch(events)
        lines.write(sealed)
        return sealed

    def _line_renderer(self) -> ThreadPoolExecutor:
        if self._renderer is None:
            self._renderer = ThreadPoolExecutor(1, thread_name_prefix="audit-log-lines")
        return self._renderer

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
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._renderer is not None:
            self._renderer.shutdown(wait=False)
            self._renderer = None


class _BatchLines:
    """One batch's log lines: rendered while its COMMIT waits on the disk, written after it."""

    def __init__(self, renderer: ThreadPoolExecutor) -> None:
        self._renderer = renderer
        self._lines: Future[list[str] | None] | None = None

    def render(self, sealed: list[Event]) -> None:
        """The before_commit hook: start rendering in the helper thread (never raises)."""
        # The COMMIT releases the GIL for the whole fsync; the helper renders meanwhile. Only
        # rendering: if the COMMIT fails, these lines are dropped unwritten. (A processor with
        # side effects of its own, like capture_logs() in tests, sees them before it ends.)
        with contextlib.suppress(RuntimeError):  # shut down by close(): render after the commit
            self._lines = self._renderer.submit(render_lines, AUDIT_EVENT, sealed)

    def write(self, sealed: list[Event]) -> None:
        """Write the committed batch's lines; never raises past the commit."""
        # The database is the record, a log line is a copy: no failure here undoes a commit.
        with contextlib.suppress(Exception):
            lines = self._lines.result() if self._lines else render_lines(AUDIT_EVENT, sealed)
            if lines is None:
                log_each(AUDIT_EVENT, sealed)  # a chain that does not end in text
            else:
                write_lines(lines)
