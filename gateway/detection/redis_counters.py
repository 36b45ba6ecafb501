"""Sliding-window counters in Redis, shared by every replica (contract §8).

One sorted set per rule and principal: the member is what the rule counts, the score the
latest time it was seen. Each tally is ZADD (GT: a member's time only moves forward), then
ZREMRANGEBYSCORE drops what fell out of the window, ZCARD counts, EXPIRE lets an idle key
vanish. All tallies of one event go in one MULTI/EXEC pipeline: one round trip, and no other
replica's command lands between a key's add and its count.

Admission (`admit`) is one Lua script: Redis runs a script to the end before any other
command, so the check of every threshold and the count are one step across all replicas.

Redis is a trust boundary (docs/security.md §3), trusted for counts and never for uptime:
when it cannot be reached admission fails closed (503 `detection_unavailable` for staff) and
/readyz, which asks `check`, is not ready. `rediss://` (TLS) and AUTH
(`redis://user:password@host`) come from the URL through redis-py's `from_url`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from gateway.detection.counters import CounterStoreUnavailable, Gate, Tally

__all__ = ["CounterStoreUnavailable", "RedisCounters"]

DEFAULT_PREFIX = "footgw:detect:"

# KEYS: one per gate. ARGV: five per gate: member, time, cutoff (scores at or below it are out
# of the window, as in `add`), limit, and the key's time to live when the gate counts, else 0.
# Times travel as Python's repr of the float, so Lua's own number formatting never rounds them.
# Returns 0 when admitted, else the 1-based index of the first gate at its limit.
ADMIT_SCRIPT = """
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[i * 5 - 2])
  if redis.call('ZCARD', key) >= tonumber(ARGV[i * 5 - 1]) then
    return i
  end
end
for i, key in ipairs(KEYS) do
  if ARGV[i * 5] ~= '0' then
    redis.call('ZADD', key, 'GT', ARGV[i * 5 - 3], ARGV[i * 5 - 4])
    redis.call('EXPIRE', key, ARGV[i * 5])
  end
end
return 0
"""


class RedisCounters:
    """CounterStore on Redis sorted sets (redis.asyncio)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        # EVALSHA, falling back to EVAL once per connection when Redis does not know it yet.
        self._admit = client.register_script(ADMIT_SCRIPT)

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

    async def admit(self, gates: Sequence[Gate]) -> int | None:
        if not gates:
            return None
        keys = [self.prefix + gate.tally.key for gate in gates]
        args: list[str | float | int] = []
        for gate in gates:
            tally = gate.tally
            ttl = math.ceil(tally.window) + 60 if gate.count else 0
            args += [tally.member, repr(tally.at), repr(tally.at - tally.window), gate.limit, ttl]
        try:
            refused = int(await self._admit(keys=keys, args=args))
        except RedisError as exc:
            raise CounterStoreUnavailable(str(exc)) from exc
        return refused - 1 if refused else None

    async def forget(self, keys: Sequence[str]) -> None:
        if keys:
            try:
                await self.client.delete(*(self.prefix + k for k in keys))
            except RedisError as exc:
                raise CounterStoreUnavailable(str(exc)) from exc

    async def check(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            # The class alone: readiness is public, and an error's text may name the host.
            raise CounterStoreUnavailable(type(exc).__name__) from exc

    async def close(self) -> None:
        await self.client.aclose()
