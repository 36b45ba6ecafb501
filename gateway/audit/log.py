"""The audit log as the request flow sees it: `await append(event)` returns once it is durable.

Group commit: appends that arrive while a batch is being written wait together and go in
the next transaction, so under load many requests share one fsync, while a lone request
still waits for exactly one. Every committed event is also one structured log line.

The batches are written by one thread of the log's own, which takes whatever has queued each
time it is free. The event loop only queues an event and, once per batch, resolves the batch's
futures: while a batch's COMMIT waits on the disk (the GIL released), the loop serves the
requests whose events go in the next one (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio.to_thread
import structlog

from gateway.audit import lines
from gateway.audit.atomic import Change, EventOf, EventsOf, commit_with_event, commit_with_events
from gateway.audit.companions import Companion, with_companions
from gateway.audit.events import Event
from gateway.audit.store import AuditStore, before_commit
from gateway.background import detached_context, spawn
from gateway.errors import AuditUnavailable, GatewayError
from gateway.logging_setup import log_each, write_lines

log = structlog.get_logger("gateway.audit")

CommitHook = Callable[[Sequence[Event]], Awaitable[None]]
MAX_BATCH = 512
AUDIT_EVENT = lines.AUDIT_EVENT
# How late past its deadline a waiting append may be failed: the watchdog wakes at most this
# often, however many appends wait on a stuck store (each wake looks at all of them).
DEADLINE_SLACK = 0.05

# An appended event, the future its caller awaits, and the loop time its caller stops waiting.
# ... and the rows that commit with it (companions.py: the outbox).
_Waiter = tuple[Event, asyncio.Future[Event], float, Sequence[Companion]]
T = TypeVar("T")


class AuditLog:
    """Durable, ordered appends to the hash chain, shared by every request of one process."""

    def __init__(self, store: AuditStore, *, timeout: float = 5.0) -> None:
        self.store = store
        self.timeout = timeout
        # Appended on the loop, taken by the writer thread: deque's append and popleft are
        # atomic, and the loop reads it only as a snapshot (tuple()).
        self._pending: deque[_Waiter] = deque()
        self._writing: tuple[_Waiter, ...] = ()  # the batch in the store right now
        self._wake = threading.Event()  # set when the writer thread may have work
        self._idle = True  # the writer thread waits on _wake (cleared before it looks again)
        self._kicked = False  # a call to _kick() is scheduled on the loop
        self._thread: threading.Thread | None = None
        self._watchdog: asyncio.TimerHandle | None = None  # fails appends past their deadline
        self._watchdog_at = 0.0  # the loop time it is armed for
        self._hooks: list[CommitHook] = []
        self._committed: deque[list[Event]] = deque()  # batches whose hooks have yet to run
        self._hook_runner: asyncio.Task[None] | None = None
        self._companion_hooks: list[tuple[str, Callable[[], None]]] = []
        self._closing = False

    def on_commit(self, hook: CommitHook) -> None:
        """Call hook with each committed batch (checkpoints); its failures are logged only."""
        self._hooks.append(hook)

    def on_companions(self, table: str, hook: Callable[[], None]) -> None:
        """Call hook() (on the loop) after a batch that carried rows of `table` committed."""
        self._companion_hooks.append((table, hook))

    async def append(self, event: Event, companions: Sequence[Companion] = ()) -> Event:
        """Commit one event durably and return it sealed; AuditUnavailable if that fails.

        `companions` are rows committed in the same transaction (the outbox's notifications):
        they land iff the event does, in the group-commit batch's one fsync.
        """
        return await self._queue(event, companions)

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

    def _queue(self, event: Event, companions: Sequence[Companion] = ()) -> asyncio.Future[Event]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        future: asyncio.Future[Event] = loop.create_future()
        self._pending.append((event, future, deadline, companions))
        if self._watchdog is None or deadline < self._watchdog_at:  # e.g. a shorter timeout
            self._arm_watchdog(loop, deadline)
        if self._idle and not self._kicked:
            # Woken once the loop has run what is ready now: the requests being served in this
            # turn of the loop queue their events first, and they all go in one batch.
            self._kicked = True
            loop.call_soon(self._kick)
        return future

    def _kick(self) -> None:
        self._kicked = False
        if self._idle:  # after the appends: a writer about to wait sees them first
            self._idle = False
            self._ensure_writer()
            self._wake.set()

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
        for _, future, deadline, _ in (*self._writing, *tuple(self._pending)):
            if future.done() or future.get_loop() is not loop:
                continue
            if deadline <= now:
                future.set_exception(AuditUnavailable("The audit log did not answer in time."))
            elif upcoming is None or deadline < upcoming:
                upcoming = deadline
        if upcoming is not None:
            self._arm_watchdog(loop, max(upcoming, now + DEADLINE_SLACK))

    def _ensure_writer(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # Daemon: appends nobody has been answered for may be lost at exit, never an
            # acknowledged one. The thread logs with no request's context (background.py).
            self._thread = threading.Thread(
                target=detached_context().run,
                args=(self._write_loop,),
                name="audit-writer",
                daemon=True,
            )
            self._thread.start()

    def _write_loop(self) -> None:
        """The writer thread: take what has queued, commit it, answer it; until closed."""
        try:
            while not (self._closing and not self._pending):
                if self._pending:
                    self._write(
                        [self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))]
                    )
                    continue
                self._idle = True
                if not self._pending and not self._closing:  # looked again after saying so
                    self._wake.wait()
                self._wake.clear()
                self._idle = False
        finally:
            self._idle = True  # the next append starts a writer again

    def _write(self, batch: list[_Waiter]) -> None:
        """Commit one batch and hand each waiter's answer to the loop it waits on."""
        self._writing = tuple(batch)
        try:
            result: list[Event] | BaseException = self._append_and_log(batch)
        except Exception as exc:  # any failure of the store is "not durable": fail closed
            log.error("audit_write_failed", error=str(exc), events=len(batch))
            result = exc if isinstance(exc, GatewayError) else AuditUnavailable(str(exc))
        finally:
            self._writing = ()
        loops: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        for waiter in batch:
            loops.setdefault(waiter[1].get_loop(), []).append(waiter)
        for i, (loop, waiters) in enumerate(loops.items()):
            if len(loops) > 1 and not isinstance(result, BaseException):  # never, in serve
                mine = {id(w) for w in waiters}
                answer: list[Event] | BaseException = [
                    e for w, e in zip(batch, result, strict=True) if id(w) in mine
                ]
            else:
                answer = result
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(self._answer, waiters, answer, i == 0)

    def _append_and_log(self, batch: list[_Waiter]) -> list[Event]:
        """Commit the batch, then write each event's log line: after the commit, before anyone
        is answered. The lines are made from the bodies the store hashed (audit/lines.py)."""
        made: list[list[str] | None] = []

        def render(sealed: list[Event], bodies: list[str]) -> None:
            with contextlib.suppress(Exception):  # a line is a copy: it never fails a batch
                made.append(lines.render(sealed, bodies))

        rows = [row for _, _, _, companions in batch for row in companions]
        with before_commit(render), with_companions(rows):
            sealed = self.store.append_batch([event for event, _, _, _ in batch])
        with contextlib.suppress(Exception):  # nor does writing it undo the commit
            rendered = made[0] if made else lines.render(sealed)
            if rendered is None:
                log_each(AUDIT_EVENT, sealed)  # a chain that does not end in text
            else:
                write_lines(rendered)
        return sealed

    def _answer(
        self, waiters: list[_Waiter], result: list[Event] | BaseException, hooks: bool
    ) -> None:
        """On the loop: resolve the batch's futures, then queue its hooks once it committed."""
        if isinstance(result, BaseException):
            for _, future, _, _ in waiters:
                if not future.done():
                    future.set_exception(result)
            return
        for (_, future, _, _), sealed in zip(waiters, result, strict=True):
            if not future.done():
                future.set_result(sealed)
        if self._companion_hooks:
            tables = {row.table for _, _, _, companions in waiters for row in companions}
            for table, wake in self._companion_hooks:
                if table in tables:
                    with contextlib.suppress(Exception):  # a wake-up call never fails a commit
                        wake()
        if hooks and self._hooks:
            self._committed.append(result)
            if self._hook_runner is None or self._hook_runner.done():
                self._hook_runner = spawn(self._drain_hooks(), name="audit-hooks")

    async def _drain_hooks(self) -> None:
        while self._committed:
            await self._run_hooks(self._committed.popleft())

    async def _run_hooks(self, sealed: Sequence[Event]) -> None:
        for hook in self._hooks:
            try:
                await hook(sealed)
            except Exception as exc:  # a hook never undoes a commit or blocks a request
                log.error("audit_hook_failed", hook=getattr(hook, "__name__", "?"), error=str(exc))

    async def close(self) -> None:
        """Stop the writer once everything already appended is written and answered."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            # The writer queued its last answers on this loop before it ended: they run first.
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._hook_runner is not None:
            await self._hook_runner
            self._hook_runner = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
