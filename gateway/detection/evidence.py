"""Evidence for flags that are already open, held in memory and written in batches.

Outside working hours every staff request is `off_hours` evidence; written one by one, that is
one database write per request for a flag that is already raised (issue 16, "any hour"). So
once this process has raised or extended a flag, it remembers it until the flag's window ends,
and further evidence for it is only appended here: no read and no write on the request's path.
The detector writes what is held as one UPDATE per flag (`FlagStore.extend_many`) when a flag
holds MAX_PENDING events, FLUSH_SECONDS after the first one came, before an analyst reads or
resolves flags through this process, and on shutdown.

Nothing here is a record: every event is in the audit log, committed before its response, and
a flag is a pointer into it. A crash loses at most the held evidence of a flag that was raised
(the `flag.raised` event and the flag itself are written at once); a flag resolved meanwhile
(by another worker) is found at the flush, and the held evidence raises a new one, as it would
have at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.detection.flags import Flag, NewFlag
from gateway.types import parse_ts

MAX_PENDING = 256  # events held for one flag before they are written
FLUSH_SECONDS = 1.0  # how late the stored evidence of an open flag may be

Key = tuple[str, str]  # principal, rule


@dataclass(frozen=True, slots=True)
class Held:
    """One event's evidence for an open flag, not yet written."""

    new: NewFlag
    at: datetime
    request_id: str | None


@dataclass(slots=True)
class _Open:
    flag: Flag
    until: datetime  # the flag's window ends: later evidence raises a new flag
    held: list[Held] = field(default_factory=list)


class EvidenceBuffer:
    """The open flags this process knows, and the evidence it holds for them."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._open: dict[Key, _Open] = {}
        self._full = False  # some flag holds max_pending events (set by hold, reset by take)

    def hold(self, new: NewFlag, at: datetime, request_id: str | None) -> Flag | None:
        """The open flag `new` was added to (in memory), or None: it must be stored at once."""
        entry = self._open.get((new.principal, new.rule))
        if entry is None or at > entry.until:
            return None
        entry.held.append(Held(new, at, request_id))
        self._full = self._full or len(entry.held) >= self.max_pending
        return entry.flag

    def full(self) -> bool:
        """Whether some flag holds MAX_PENDING events (write now, not at the timer)."""
        return self._full

    def pending(self) -> bool:
        return any(entry.held for entry in self._open.values())

    def remember(self, flag: Flag, window: timedelta) -> None:
        """`flag` is open in the database as of now: hold its further evidence in its window."""
        key = (flag.principal, flag.rule)
        held = self._open[key].held if key in self._open else []
        self._open[key] = _Open(flag, parse_ts(flag.created_at) + window, held)

    def take(self) -> list[tuple[Flag, list[Held]]]:
        """Every flag with held evidence, and that evidence (no longer held here)."""
        taken = []
        self._full = False
        for entry in self._open.values():
            if entry.held:
                taken.append((entry.flag, entry.held))
                entry.held = []
        return taken

    def drop(self, flag: Flag) -> list[Held]:
        """Forget `flag` (it is closed): its next evidence is stored at once. Returns what was
        held for it meanwhile (since `take`)."""
        key = (flag.principal, flag.rule)
        entry = self._open.get(key)
        if entry is None or entry.flag.flag_id != flag.flag_id:
            return []
        del self._open[key]
        return entry.held

    def expire(self, now: datetime) -> None:
        """Forget flags whose window is over and that hold nothing."""
        for key in [k for k, e in self._open.items() if e.until < now and not e.held]:
            del self._open[key]
