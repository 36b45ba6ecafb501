"""Sliding-window counters: how many distinct members a key saw within the last window.

A key is one rule for one principal within one audit chain (`<chain>:customer_browsing:sam`,
so two deployments sharing a Redis never count into each other); a member is what the rule
counts (a customer id, a clip, a denial's event id). Adding a member again moves its time
forward rather than counting it twice, so "distinct customers within 60 minutes" is one call.

Two implementations behind one small interface: in-process (the default, one replica) and
Redis (`gateway.detection.redis_counters`, when FOOTGW_REDIS_URL is set) so that the counts
hold across replicas (contract §8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Tally:
    """Count `member` under `key` at time `at` (epoch seconds) in a window of `window` seconds."""

    key: str
    member: str
    at: float
    window: float


class CounterStore(Protocol):
    """Where sliding-window counts live."""

    async def add(self, tallies: Sequence[Tally]) -> list[int]:
        """Record each tally and return, for each, its key's distinct members in the window."""
        ...

    async def forget(self, keys: Sequence[str]) -> None:
        """Drop these keys (a reinstated principal starts from zero)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCounters:
    """Counts in this process only: right for one replica, and for tests."""

    def __init__(self) -> None:
        # key -> member -> the latest time it was seen
        self._keys: dict[str, dict[str, float]] = {}

    async def add(self, tallies: Sequence[Tally]) -> list[int]:
        return [self._add(t) for t in tallies]

    def _add(self, tally: Tally) -> int:
        members = self._keys.setdefault(tally.key, {})
        members[tally.member] = max(members.get(tally.member, tally.at), tally.at)
        cutoff = tally.at - tally.window
        for member in [m for m, seen in members.items() if seen <= cutoff]:
            del members[member]  # older than the window: no longer counts
        return len(members)

    async def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    async def close(self) -> None:
        self._keys.clear()
