"""Read a blocking response body ahead of its consumer, a few chunks deep, in a worker thread.

A body read from S3 and the relay of what was read to the client must overlap, or each waits
for the other: the store's sender stalls while the gateway writes to the client, and the client
waits while the gateway reads. One chunk of read-ahead is not enough on its own: every chunk
then costs a thread hop in each direction before the next read can start, and the store's
sender idles for it. Here one job reads chunk after chunk while there is room (`depth` chunks
read and not yet taken), and stops when the room runs out; taking a chunk restarts it. So:

- memory per stream is bounded: at most `depth` chunks of `chunk_size`, whatever the clip size;
- a slow client never holds a worker thread: the job returns as soon as the room is full,
  instead of blocking on the consumer, so streams never queue behind each other for a thread;
- the body is read by one job at a time, in order (a body is a stream: reads cannot overlap).

The reader knows nothing of S3: errors from `read` are handed to the consumer as they were
raised, to be translated by the caller (STYLE.md, "translate at the boundary").
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import suppress


class BodyEnded(Exception):
    """The body ended (an empty read) before the promised length."""


class ReadAhead:
    """The chunks of one blocking body, read ahead in `executor`; `next_chunk()` to take one."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        length: int,
        executor: Executor,
        *,
        chunk_size: int,
        depth: int,
    ) -> None:
        self._read = read
        self._executor = executor
        self._chunk_size = chunk_size
        self._depth = depth
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        # Shared with the reading thread, under _lock.
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._to_read = length  # bytes not yet read from the body
        self._error: BaseException | None = None
        self._stopped = False
        self._job: asyncio.Future[None] | None = None
        with self._lock:
            self._start_job()

    def _start_job(self) -> None:
        """Start the reading job. Under _lock, so the job cannot end before it is recorded."""
        self._job = self._loop.run_in_executor(self._executor, self._read_while_room)

    def _read_while_room(self) -> None:
        """In a worker thread: read chunks until the room is full, the body is read, or stop."""
        while True:
            with self._lock:
                if self._stopped or self._to_read <= 0 or len(self._chunks) >= self._depth:
                    self._job_done_locked()
                    return
                size = min(self._chunk_size, self._to_read)
            try:
                chunk = self._read(size)
                if not chunk:
                    raise BodyEnded
            except BaseException as exc:  # handed to the consumer, which raises it
                with self._lock:
                    self._error = exc
                    self._job_done_locked()
                self._wake()
                return
            with self._lock:
                self._to_read -= len(chunk)
                self._chunks.append(chunk)
            self._wake()

    def _job_done_locked(self) -> None:
        # The consumer restarts a job only when it sees none running (under the same lock).
        self._job = None

    def _wake(self) -> None:
        # The loop may already be closed when a stopped stream's last read returns.
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._ready.set)

    async def next_chunk(self) -> bytes | None:
        """The next chunk, in order; None once `length` bytes were taken. Raises what the body
        raised (BodyEnded if it ended early), after the chunks read before the failure."""
        while True:
            with self._lock:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._restart_locked()
                    return chunk
                if self._error is not None:
                    raise self._error
                if self._to_read <= 0:
                    return None
                self._restart_locked()
                self._ready.clear()
            await self._ready.wait()

    def _restart_locked(self) -> None:
        """Start a reading job if none runs and there is something to read and room for it."""
        if (
            self._job is None
            and not self._stopped
            and self._error is None
            and self._to_read > 0
            and len(self._chunks) < self._depth
        ):
            self._start_job()

    async def settle(self) -> None:
        """Stop reading and wait for a read still in flight, so the body is never closed under
        it (the read is bounded by the client's read timeout)."""
        with self._lock:
            self._stopped = True
            job = self._job
            self._chunks.clear()
        if job is not None:
            with suppress(BaseException):
                await asyncio.shield(job)
