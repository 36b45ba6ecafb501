"""The liveness cache (gateway/playback/liveness.py) on a real session store: one read per
token at a time, reads ahead of need, never older than a second, and a forget is never undone
by a read that began before it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.db import create_db_engine
from gateway.playback.liveness import Liveness
from gateway.playback.store import Session, SessionStore, Standing
from tests.test_playback_store import standing as a_standing

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingStore(SessionStore):
    """The real store, counting its standing reads; `gate` holds them while it is clear."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, engine)
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def standing(self, token_hash: str) -> Standing | None:
        self.reads += 1
        assert self.gate.wait(10), "the test never opened the gate"
        return super().standing(token_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrations.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Session:
    made = replace(a_standing(grant_id=None).session, token_hash="a" * 64)
    SessionStore(engine, engine).create(made)
    return made


@pytest.fixture
def store(engine: Engine, session: Session) -> CountingStore:
    return CountingStore(engine)


async def test_requests_that_find_no_entry_share_one_read(
    store: CountingStore, session: Session
) -> None:
    liveness = Liveness(store, 600, ticker=Clock())
    store.gate.clear()
    found: list[Standing | None] = []

    async def ask() -> None:
        found.append(await liveness.standing(session.token_hash))

    async with anyio.create_task_group() as group:
        for _ in range(16):
            group.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        store.gate.set()
    assert store.reads == 1
    assert len(found) == 16 and all(f is not None and f.session == session for f in found)


async def test_an_entry_past_half_its_life_is_read_again_in_the_background(
    store: CountingStore, session: Session
) -> None:
    clock = Clock()
    liveness = Liveness(store, 600, ticker=clock)
    assert await liveness.standing(session.token_hash) is not None
    clock.now += 0.4
    assert await liveness.standing(session.token_hash) is not None
    assert store.reads == 1  # young: answered from the entry, nothing read
    clock.now += 0.2
    store.gate.clear()
    assert await liveness.standing(session.token_hash) is not None  # answered at once...
    ahead = liveness._reading[session.token_hash]  # ...and a read is under way
    store.gate.set()
    await ahead  # it lands in the cache
    assert store.reads == 2
    clock.now += 0.9  # 1.5 s after the first read began, 0.9 s after the second
    store.gate.clear()
    with anyio.fail_after(5):  # answered from the second read's entry, without waiting
        assert await liveness.standing(session.token_hash) is not None
    ahead = liveness._reading[session.token_hash]  # that entry past half its life: read ahead
    store.gate.set()
    await ahead
    assert store.reads == 3


async def test_an_entry_a_second_old_is_never_used(store: CountingStore, session: Session) -> None:
    clock = Clock()
    liveness = Liveness(store, 600, ticker=clock)
    await liveness.standing(session.token_hash)
    clock.now += 1.0
    store.gate.clear()
    with anyio.move_on_after(0.2) as waited:
        await liveness.standing(session.token_hash)  # must wait for the new read
    assert waited.cancelled_caught
    store.gate.set()
    assert await liveness.standing(session.token_hash) is not None
    assert store.reads == 2


async def test_a_read_begun_before_a_forget_is_not_kept(
    store: CountingStore, session: Session
) -> None:
    liveness = Liveness(store, 600, ticker=Clock())
    store.gate.clear()
    async with anyio.create_task_group() as group:
        group.start_soon(liveness.standing, session.token_hash)
        await anyio.wait_all_tasks_blocked()
        liveness.forget(session.token_hash)  # the session changed here meanwhile
        store.gate.set()
    assert await liveness.standing(session.token_hash) is not None
    assert store.reads == 2  # the forgotten read was not cached: this one read again


async def test_no_such_session_is_not_cached(store: CountingStore) -> None:
    liveness = Liveness(store, 600, ticker=Clock())
    assert await liveness.standing("b" * 64) is None
    assert await liveness.standing("b" * 64) is None
    assert store.reads == 2
