"""Sliding-window counters in Redis, shared by every replica (contract §8).

One sorted set per rule and principal: the member is what the rule counts, the score the
latest time it was seen. Each tally is ZADD (GT: a member's time only moves forward), then
ZREMRANGEBYSCORE drops what fell out of the window, ZCARD counts, EXPIRE lets an idle key
vanish. All tallies of one event go in one MULTI/EXEC pipeline: one round trip, and no other
replica's command lands between a key's add and its count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.detection.counters import Tally

DEFAULT_PREFIX = "footgw:detect:"


class CounterStoreUnavailable(Exception):
    """Redis could not be reached; detection for this event is skipped and logged."""


class RedisCounters:
    """CounterStore on Redis sorted sets (redis.asyncio)."""

    def __init__(self, client: redis.Redis[bytes], prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisCounters:
        """A store on the Redis at url, with short timeouts: detection runs on the request path."""
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(client, prefix)

    async def add(self, tallies: Sequence[Tally]) -> list[int]:
        if not tallies:
            return []
        pipe = self.client.pipeline(transaction=True)
        for tally in tallies:
            key = self.prefix + tally.key
            pipe.zadd(key, {tally.member: tally.at}, gt=True)
            # Inclusive bound, as in MemoryCounters: a member seen exactly one window ago is out.
            pipe.zremrangebyscore(key, "-inf", tally.at - tally.window)
            pipe.zcard(key)
            pipe.expire(key, math.ceil(tally.window) + 60)
        try:
            replies: list[Any] = await pipe.execute()
        except RedisError as exc:
            raise CounterStoreUnavailable(str(exc)) from exc
        # Four replies per tally; the third is ZCARD.
        return [int(replies[i * 4 + 2]) for i in range(len(tallies))]

    async def forget(self, keys: Sequence[str]) -> None:
        if keys:
            try:
                await self.client.delete(*(self.prefix + k for k in keys))
            except RedisError as exc:
                raise CounterStoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        # redis 5+ names it aclose (close is deprecated); the types-redis stubs predate it.
        await self.client.aclose()  # type: ignore[attr-defined]
