"""The SQLite-file counters that `serve --workers N` shares without Redis: the same answers as
the in-process and Redis stores, and one atomic admission across real processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from gateway.detection.counters import Gate, MemoryCounters, Tally
from gateway.detection.sqlite_counters import SqliteCounters
from tests.test_detection_rules import START


def gates(member: str, at: float) -> list[Gate]:
    return [
        Gate(Tally("denials", "", at, 600), 5, count=False),  # checked, never counted
        Gate(Tally("k", member, at, 600), 2),
    ]


async def admission_answers(store: Any) -> list[Any]:
    t0 = START.timestamp()
    out: list[Any] = [await store.admit(gates("c1", t0))]
    out.append(await store.admit(gates("c1", t0 + 1)))
    out.append(await store.admit(gates("c2", t0 + 2)))
    out.append(await store.admit(gates("c1", t0 + 3)))  # at the limit: refused
    out.append(await store.admit(gates("c3", t0 + 4)))
    out.append(await store.admit(gates("c3", t0 + 603)))  # c1 and c2 left the window
    out.append((await store.add([Tally("k", "x", t0 + 603, 600)]))[0])
    await store.close()
    return out


def test_admission_gives_the_same_answers_as_the_in_process_store(tmp_path: Path) -> None:
    ours = asyncio.run(admission_answers(SqliteCounters(tmp_path / "counts.db")))
    assert ours == asyncio.run(admission_answers(MemoryCounters()))
    assert ours == [None, None, None, 1, 1, None, 2]
    with sqlite3.connect(tmp_path / "counts.db") as db:  # a key only checked is never written
        assert db.execute("SELECT COUNT(*) FROM counts WHERE key = 'denials'").fetchone() == (0,)


def test_distinct_members_within_the_window_and_forget(tmp_path: Path) -> None:
    async def scenario() -> list[Any]:
        store = SqliteCounters(tmp_path / "counts.db")
        t0 = START.timestamp()
        a = await store.add([Tally("k", "c1", t0, 600), Tally("other", "x", t0, 600)])
        b = await store.add([Tally("k", "c1", t0 + 10, 600)])  # the same member again
        c = await store.add([Tally("k", "c2", t0 + 20, 600)])
        d = await store.add([Tally("k", "c3", t0 + 611, 600)])  # c1 (seen at +10) is out
        await store.forget(["k"])
        e = await store.add([Tally("k", "c9", t0 + 612, 600)])
        await store.check()
        await store.close()
        return [a, b, c, d, e]

    assert asyncio.run(scenario()) == [[1, 1], [1], [2], [2], [1]]


def _admit_from_a_process(path: str, offset: int, start: Any, answers: Any) -> None:
    async def run() -> list[int | None]:
        store = SqliteCounters(Path(path))
        t0 = START.timestamp()
        try:
            return list(
                await asyncio.gather(
                    *(
                        store.admit([Gate(Tally("k", f"c{i % 25}", t0 + i / 100, 3600), 10)])
                        for i in range(offset, 40, 2)
                    )
                )
            )
        finally:
            await store.close()

    start.wait()
    answers.put(asyncio.run(run()))


def test_forty_concurrent_admissions_from_two_processes_admit_exactly_the_limit(
    tmp_path: Path,
) -> None:
    """One transaction per admission: however two processes interleave, the limit holds."""
    path = tmp_path / "counts.db"
    asyncio.run(SqliteCounters(path).check())  # the file and table exist before the race
    context = multiprocessing.get_context("fork")
    start, answers = context.Event(), context.Queue()
    workers = [
        context.Process(target=_admit_from_a_process, args=(str(path), n, start, answers))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    results = [answers.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    admitted = [a for result in results for a in result if a is None]
    with sqlite3.connect(path) as db:
        counted = db.execute("SELECT COUNT(*) FROM counts WHERE key = 'k'").fetchone()[0]
    assert counted == 10
    assert len(admitted) >= 10 and all(len(result) == 20 for result in results)
