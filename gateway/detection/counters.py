"""Sliding-window counters: how many distinct members a key saw within the last window.

A key is one rule for one principal within one audit chain (`<chain>:customer_browsing:sam`,
so two deployments sharing a Redis never count into each other); a member is what the rule
counts (a customer id, a clip, a denial's event id). Adding a member again moves its time
forward rather than counting it twice, so "distinct customers within 60 minutes" is one call.

Two implementations behind one small interface: in-process (the default, one replica) and
Redis (`gateway.detection.redis_counters`, when FOOTGW_REDIS_URL is set) so that the counts
hold across replicas (contract §8).

`admit` is the preventive half (contract §8, "Admission"): before a request is served, one
atomic step checks every suspend threshold of the principal and counts what the request will
show. A check followed by a separate count is raced by concurrent requests (STYLE §17): each
reads "below the threshold", and all are served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class CounterStoreUnavailable(Exception):
    """The counter store could not be reached (Redis down, timed out, refused)."""


@dataclass(frozen=True, slots=True)
class Tally:
    """Count `member` under `key` at time `at` (epoch seconds) in a window of `window` seconds."""

    key: str
    member: str
    at: float
    window: float


@dataclass(frozen=True, slots=True)
class Gate:
    """One threshold an admission checks: refuse when `tally.key` already holds `limit`
    members in the window; otherwise count `tally.member` when `count` is set."""

    tally: Tally
    limit: int
    count: bool = True


class CounterStore(Protocol):
    """Where sliding-window counts live."""

    async def add(self, tallies: Sequence[Tally]) -> list[int]:
        """Record each tally and return, for each, its key's distinct members in the window."""
        ...

    async def admit(self, gates: Sequence[Gate]) -> int | None:
        """In one atomic step: the index of the first gate whose key is at its limit (nothing
        is counted), or None when none is, after counting the gates that count."""
        ...

    async def forget(self, keys: Sequence[str]) -> None:
        """Drop these keys (a reinstated principal starts from zero)."""
        ...

    async def check(self) -> None:
        """Raise CounterStoreUnavailable unless the store answers right now."""
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

    async def admit(self, gates: Sequence[Gate]) -> int | None:
        # No await between the check and the count: on the one event loop of this process,
        # that makes the two one step for every request of every principal.
        for index, gate in enumerate(gates):
            if len(self._live(gate.tally)) >= gate.limit:
                return index
        for gate in gates:
            if gate.count:
                self._add(gate.tally)
        return None

    def _add(self, tally: Tally) -> int:
        members = self._live(tally)
        members[tally.member] = max(members.get(tally.member, tally.at), tally.at)
        return len(members)

    def _live(self, tally: Tally) -> dict[str, float]:
        """The key's members still inside the window that ends at the tally's time."""
        members = self._keys.setdefault(tally.key, {})
        cutoff = tally.at - tally.window
        for member in [m for m, seen in members.items() if seen <= cutoff]:
            del members[member]  # older than the window: no longer counts
        return members

    async def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    async def check(self) -> None:
        return None  # this process's memory is always there

    async def close(self) -> None:
        self._keys.clear()
