"""Detection counters in Redis: the same sliding windows, shared by several replicas.

Needs a Redis: FOOTGW_TEST_REDIS_URL (CI sets it; locally, e.g. redis://127.0.0.1:6379/0).
Each test uses its own key prefix, and deletes it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.detection.counters import Gate, Tally
from gateway.detection.redis_counters import CounterStoreUnavailable, RedisCounters
from gateway.types import EventType
from tests.support.cluster import require_redis
from tests.test_detection_rules import START, Harness, only

pytestmark = [pytest.mark.redis]


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"footgw:test:{uuid.uuid4().hex}:"
    yield name
    store = RedisCounters.from_url(redis_url, name)

    async def cleanup() -> None:
        keys = [k async for k in store.client.scan_iter(match=name + "*")]
        if keys:
            await store.client.delete(*keys)
        await store.close()

    asyncio.run(cleanup())


def test_distinct_members_within_the_window(redis_url, prefix):
    async def scenario() -> list[Any]:
        store = RedisCounters.from_url(redis_url, prefix)
        try:
            t0 = START.timestamp()
            a = await store.add([Tally("k", "c1", t0, 600), Tally("other", "x", t0, 600)])
            b = await store.add([Tally("k", "c1", t0 + 10, 600)])  # the same member again
            c = await store.add([Tally("k", "c2", t0 + 20, 600)])
            d = await store.add([Tally("k", "c3", t0 + 611, 600)])  # c1 (seen at +10) is out
            ttl = await store.client.ttl(prefix + "k")
            await store.forget(["k"])
            e = await store.add([Tally("k", "c9", t0 + 612, 600)])
            return [a, b, c, d, e, ttl]
        finally:
            await store.close()

    a, b, c, d, e, ttl = asyncio.run(scenario())
    assert a == [1, 1] and b == [1] and c == [2] and d == [2] and e == [1]
    assert 600 < ttl <= 660  # idle keys vanish on their own


def test_counts_hold_across_replicas(redis_url, prefix, tmp_path):
    """Two detectors (two replicas) on one database and one Redis see one principal's sum."""
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    config = only("customer_browsing", "[rules.customer_browsing]\nflag_at = 4\nsuspend_at = 6\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = Harness(tmp_path / "a", config, RedisCounters.from_url(redis_url, prefix), db)
    two = Harness(tmp_path / "b", config, RedisCounters.from_url(redis_url, prefix), db)
    try:
        for i in range(3):
            (one if i % 2 == 0 else two).access(customer=f"c{i}")
        assert one.flags() == []  # three customers, split over two replicas
        two.access(customer="c3")
        [flag] = one.flags("customer_browsing")
        assert flag.detail["count"] == 4
        one.access(customer="c4")
        two.access(customer="c5")
        assert one.suspended()
        assert len(one.events(EventType.PRINCIPAL_SUSPENDED)) == 1
    finally:
        one.close()
        two.close()


def test_admission_refuses_at_the_limit_and_counts_only_when_admitted(redis_url, prefix):
    """The same answers as MemoryCounters.admit (tests/test_detection_rules.py)."""

    def gates(member: str, at: float) -> list[Gate]:
        return [
            Gate(Tally("denials", "", at, 600), 5, count=False),  # checked, never counted
            Gate(Tally("k", member, at, 600), 2),
        ]

    async def scenario() -> list[Any]:
        store = RedisCounters.from_url(redis_url, prefix)
        try:
            t0 = START.timestamp()
            out: list[Any] = [await store.admit(gates("c1", t0))]
            out.append(await store.admit(gates("c1", t0 + 1)))
            out.append(await store.admit(gates("c2", t0 + 2)))
            out.append(await store.admit(gates("c1", t0 + 3)))  # at the limit: refused
            out.append(await store.admit(gates("c3", t0 + 4)))
            out.append(await store.admit(gates("c3", t0 + 603)))  # c1 and c2 left the window
            out.append((await store.add([Tally("k", "x", t0 + 603, 600)]))[0])
            out.append(await store.client.exists(prefix + "denials"))  # never written
            out.append(await store.client.ttl(prefix + "k"))
            return out
        finally:
            await store.close()

    *answers, denials_key, ttl = asyncio.run(scenario())
    assert answers == [None, None, None, 1, 1, None, 2]
    assert denials_key == 0 and 600 < ttl <= 660


def test_forty_concurrent_admissions_on_two_replicas_admit_exactly_the_limit(redis_url, prefix):
    """One script per admission: however the replicas interleave, the limit is never passed."""

    async def scenario() -> tuple[list[int | None], int]:
        replicas = [RedisCounters.from_url(redis_url, prefix) for _ in range(2)]
        try:
            t0 = START.timestamp()
            answers = await asyncio.gather(
                *(
                    replicas[i % 2].admit([Gate(Tally("k", f"c{i % 25}", t0 + i / 100, 3600), 10)])
                    for i in range(40)
                )
            )
            return list(answers), int(await replicas[0].client.zcard(prefix + "k"))
        finally:
            for replica in replicas:
                await replica.close()

    answers, counted = asyncio.run(scenario())
    assert counted == 10
    assert answers.count(None) >= 10 and set(answers) <= {None, 0}


def test_an_unreachable_redis_is_reported_not_hidden():
    store = RedisCounters.from_url("redis://127.0.0.1:9/0")

    async def scenario() -> None:
        try:
            await store.add([Tally("k", "m", 0.0, 60)])
        finally:
            await store.close()

    with pytest.raises(CounterStoreUnavailable):
        asyncio.run(scenario())
