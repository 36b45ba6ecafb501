"""Whether an open footage stream may go on: its permission re-asked at chunk boundaries.

A stream can outlast the decision that opened it by hours. So between chunks, at most once
every `interval` seconds, the stream asks the very question its decision asked (the flow's own
authorization over facts read fresh from the database, which every replica shares), and stops
the moment the answer is no longer allow: a revoked or expired grant, a suspended principal,
a camera moved to a zone the caller may not see (docs/security.md, "Hardening").

Asking again through the decision itself, rather than keeping a second record of "what may have
changed", leaves one answer to "may this principal see this clip" (STYLE §16), and a change made
on any replica is seen by the next re-check on every other. Its cost is bounded by `interval`:
at most one facts read per stream per interval, and none while a stream waits on its client
(the check runs only before a chunk is read). Any failure to ask is a no (STYLE §3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from gateway.types import Decision

log = structlog.get_logger("gateway.streamguard")

RECHECK_SECONDS = 2.0
"""How long a stream may run on a permission it has not re-checked: "within a few seconds"."""

Decide = Callable[[], Awaitable[Decision]]
"""The stream's decision, asked again with fresh facts."""
Explain = Callable[[Decision], Awaitable[str]]
"""Why a re-asked decision denies, as access.complete's `detail.ended_by`."""
Ticker = Callable[[], float]
"""A monotonic clock in seconds (time.monotonic; tests move their own)."""


@dataclass(slots=True)
class StreamGuard:
    """Re-asks one stream's decision between chunks; `ended_by` says why it stopped, if it did."""

    decide: Decide
    explain: Explain
    ticker: Ticker
    interval: float = RECHECK_SECONDS
    ended_by: str | None = None
    reason: str | None = None  # the denying decision's reason, recorded beside ended_by
    _due: float = field(init=False)

    def __post_init__(self) -> None:
        self._due = self.ticker() + self.interval  # the opening decision was just made

    def ending(self) -> dict[str, str | None] | None:
        """access.complete's `detail.ended_by` and `detail.reason`, if the guard cut the stream."""
        return None if self.ended_by is None else {"ended_by": self.ended_by, "reason": self.reason}

    async def still_allowed(self) -> bool:
        """False once the permission has ended (and stays False); cheap until a check is due."""
        if self.ended_by is not None:
            return False
        now = self.ticker()
        if now < self._due:
            return True
        self._due = now + self.interval
        try:
            decision = await self.decide()
            if decision:
                return True
            self.ended_by, self.reason = await self.explain(decision), decision.reason
        except Exception as exc:  # deny by default: a permission that cannot be read has ended
            log.error("stream_recheck_failed", error=str(exc))
            self.ended_by, self.reason = "recheck_failed", "error"
        return False
