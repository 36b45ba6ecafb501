"""AuditLog: deadlines without a timer per append, and one log write per committed batch."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from structlog.testing import capture_logs

from gateway import migrations
from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.db import audit_events, create_db_engine
from gateway.errors import AuditUnavailable
from gateway.types import EventType


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrations.migrate(engine)
    yield AuditStore(engine)
    engine.dispose()


def event(i: int = 0) -> Event:
    return new_event(EventType.ACCESS_DECISION, request_id=f"r{i}")


async def appended_together(log: AuditLog, events: Sequence[Event]) -> list[Event]:
    """Appends that are all waiting before the writer next runs, as concurrent requests are:
    the log commits them as one batch, in order."""
    return list(await asyncio.gather(*(log.append(e) for e in events)))


def committed(store: AuditStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar() or 0)


class Stream:
    """A log stream that records each write and how many events were committed at that time."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.text = ""
        self.writes: list[tuple[str, int]] = []  # print() writes the newline on its own

    def write(self, text: str) -> int:
        self.text += text
        if text.strip():
            self.writes.append((text, committed(self.store)))
        return len(text)

    def flush(self) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line]


@pytest.fixture
def stream(store: AuditStore) -> Iterator[Stream]:
    saved = structlog.get_config()
    out = Stream(store)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
    )
    yield out
    structlog.configure(**saved)


class Stuck:
    """The store's append_batch held at a gate (in the writer's worker thread)."""

    def __init__(self, store: AuditStore) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()  # a batch reached the store and is held there
        self.real = store.append_batch
        store.append_batch = self.append_batch  # type: ignore[method-assign]

    def append_batch(self, events: Sequence[Event]) -> list[Event]:
        self.entered.set()
        self.gate.wait(timeout=20)
        return self.real(events)


def test_appends_past_their_deadline_fail_closed_then_the_log_recovers(store):
    stuck = Stuck(store)

    async def main() -> tuple[list[Any], float, Event]:
        log = AuditLog(store, timeout=0.3)
        try:
            began = time.monotonic()
            waited = await asyncio.gather(
                *(log.append(event(i)) for i in range(20)), return_exceptions=True
            )
            elapsed = time.monotonic() - began
            stuck.gate.set()
            return waited, elapsed, await log.append(event(99))
        finally:
            await log.close()

    waited, elapsed, again = asyncio.run(main())
    assert all(isinstance(w, AuditUnavailable) for w in waited)
    assert 0.3 <= elapsed < 2
    assert again["seq"] == 21  # the late batch landed after all; the chain stays dense


def test_a_shorter_timeout_applies_to_the_next_append_at_once(store):
    stuck = Stuck(store)

    async def main() -> float:
        log = AuditLog(store, timeout=30)
        try:
            first = asyncio.ensure_future(log.append(event(1)))
            # The first batch is held in the store, so the next append queues behind it.
            assert await asyncio.to_thread(stuck.entered.wait, 10)
            log.timeout = 0.2
            began = time.monotonic()
            with pytest.raises(AuditUnavailable):
                await log.append(event(2))
            elapsed = time.monotonic() - began
            stuck.gate.set()
            await first
            return elapsed
        finally:
            await log.close()

    assert asyncio.run(main()) < 2


def test_each_batch_is_logged_in_one_write_after_its_commit(store, stream):
    async def main() -> list[Event]:
        log = AuditLog(store)
        try:
            first = await appended_together(log, [event(i) for i in range(10)])
            return first + await appended_together(log, [event(i) for i in range(10, 13)])
        finally:
            await log.close()

    sealed = asyncio.run(main())
    batches = [(text.count('"audit_event"'), seen) for text, seen in stream.writes]
    assert batches == [(10, 10), (3, 13)]  # one write a batch, each once the batch was durable
    lines = [r for r in stream.records() if r["event"] == "audit_event"]
    assert [(r["seq"], r["hash"], r["level"]) for r in lines] == [
        (e["seq"], e["hash"], "info") for e in sealed
    ]


def test_a_batch_that_fails_after_its_lines_were_rendered_writes_none(store, stream):
    real = store.append_batch

    def fails_at_the_end(events: Sequence[Event]) -> list[Event]:
        real(events)  # the lines are rendered during its COMMIT...
        raise AuditUnavailable("lost")  # ...and this batch still counts as not durable

    store.append_batch = fails_at_the_end  # type: ignore[method-assign]

    async def main() -> None:
        log = AuditLog(store)
        try:
            with pytest.raises(AuditUnavailable):
                await log.append(event())
        finally:
            await log.close()

    asyncio.run(main())
    assert not any('"audit_event"' in text for text, _ in stream.writes)


def test_capture_logs_sees_one_entry_per_committed_event_and_hooks_see_each_batch(store):
    batches: list[list[int]] = []

    async def hook(sealed: Sequence[Event]) -> None:
        batches.append([e["seq"] for e in sealed])

    async def main() -> None:
        log = AuditLog(store)
        log.on_commit(hook)
        try:
            await appended_together(log, [event(1), event(2)])
            await log.append(event(3))
        finally:
            await log.close()

    with capture_logs() as logs:
        asyncio.run(main())
    entries = [e for e in logs if e["event"] == "audit_event"]
    assert [(e["seq"], e["log_level"]) for e in entries] == [(1, "info"), (2, "info"), (3, "info")]
    assert batches == [[1, 2], [3]]
