"""A playback session's clip file, kept open between its requests (the file store only).

A player reads its clip in dozens of ranges, each a request. Opening the clip for each one
(two openat2 calls, an fstat, its ETag, a close) was the largest single cost of a play request
after sending the bytes (docs/benchmarks.md). So the first request's open file is kept, by
session, and each later request asks the store whether it may serve again
(FileStorage.still_serves): still linked, unchanged, and its path, resolved now with no
symlink followed, naming that very file. Anything else (the clip deleted by retention or by
its customer, replaced, rewritten, moved; a lookup the kernel cannot answer from its caches)
drops the held file, and the request opens the clip anew as a first request does, so it is
answered exactly as it would have been with nothing held: a deleted clip is a 404 at once.

Whether the session may serve at all is not decided here: every request still asks liveness
first (revoked, suspended, ended, idle), as before, and a refused request drops what its
session held (`drop`).

A held file is closed when its session's requests stop for IDLE_SECONDS (a timer sweeps), so a
deleted clip's blocks are not kept on the disk by us for longer than that; at most MAX_HELD
are kept (the least recently used go first). A file is never closed under a response still
reading it: each response borrows it, and the last borrower closes a file that was let go.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from gateway.storage.base import ObjectInfo
from gateway.storage.fs import FileClip, FileKey, FileStorage, file_key
from gateway.types import ClipRef

IDLE_SECONDS = 5.0
MAX_HELD = 256


@dataclass(slots=True)
class _Held:
    clip: ClipRef
    opened: FileClip
    key: FileKey
    used: float
    borrowers: int = 0
    released: bool = False  # let go of: closed by its last borrower

    def give_back(self) -> None:
        self.borrowers -= 1
        if self.released and self.borrowers == 0:
            self.opened.close_now()

    def let_go(self) -> None:
        self.released = True
        if self.borrowers == 0:
            self.opened.close_now()


class Borrowed:
    """One response's use of a held clip (OpenClip, with fileno for sendfile)."""

    __slots__ = ("_held", "_returned", "info")

    def __init__(self, held: _Held) -> None:
        held.borrowers += 1
        self._held = held
        self._returned = False
        self.info: ObjectInfo = held.opened.info

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        return self._held.opened.read(start, end)

    def fileno(self) -> int:
        return self._held.opened.fileno()

    async def close(self) -> None:
        if not self._returned:
            self._returned = True
            self._held.give_back()


class HeldClips:
    """Open clip files by session id; see the module docstring."""

    def __init__(
        self,
        storage: FileStorage,
        idle: float = IDLE_SECONDS,
        limit: int = MAX_HELD,
        ticker: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.idle = idle
        self.limit = limit
        self.ticker = ticker
        self._held: dict[str, _Held] = {}
        self._sweep: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._held)

    async def open(self, session_id: str, clip: Callable[[], ClipRef]) -> Borrowed:
        """The session's clip for one response: the held file if it may still serve, else the
        clip opened anew (NotFound, StorageUnavailable as storage.open raises them)."""
        now = self.ticker()
        held = self._held.get(session_id)
        if held is not None:
            if self.storage.still_serves(held.clip, held.opened, held.key):
                held.used = now
                return Borrowed(held)
            self._held.pop(session_id).let_go()
        ref = clip()
        opened = await self.storage.open(ref)
        try:
            key = file_key(os.fstat(opened.fileno()))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await opened.close()
            raise
        held = _Held(ref, opened, key, now)
        borrowed = Borrowed(held)
        earlier = self._held.pop(session_id, None)  # another request of it opened one meanwhile
        if earlier is not None:
            earlier.let_go()
        self._held[session_id] = held
        self._trim()
        self._arm()
        return borrowed

    def drop(self, session_id: str) -> None:
        """Let go of what the session holds (it was refused: it ended)."""
        held = self._held.pop(session_id, None)
        if held is not None:
            held.let_go()

    def close(self) -> None:
        """Let go of everything (shutdown)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._held:
            self._held.popitem()[1].let_go()

    def _trim(self) -> None:
        while len(self._held) > self.limit:
            oldest = min(self._held, key=lambda k: self._held[k].used)
            self._held.pop(oldest).let_go()

    def _arm(self) -> None:
        if self._sweep is None and self._held:
            loop = asyncio.get_running_loop()
            self._sweep = loop.call_later(self.idle, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        now = self.ticker()
        for session_id in [k for k, h in self._held.items() if now - h.used >= self.idle]:
            self._held.pop(session_id).let_go()
        self._arm()
