"""ReadAhead: a blocking body read a few chunks ahead in worker threads, in order and bounded.

The bodies here are in-memory stand-ins for a response body (the S3 body itself is exercised
against moto in test_storage_s3.py); the threads, the executor and the event loop are real.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.storage.readahead import BodyEnded, ReadAhead

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ReadAhead hands chunks over through asyncio's loop


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4, thread_name_prefix="test-read")
    yield pool
    pool.shutdown(wait=True)


class Body:
    """A body that serves `data` in reads of at most the asked size, and counts them."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self.data = data
        self.offset = 0
        self.reads = 0
        self.fail_at = fail_at  # the read (1-based) that raises, as a dropped connection does
        self.lock = threading.Lock()

    def read(self, size: int) -> bytes:
        with self.lock:
            self.reads += 1
            if self.reads == self.fail_at:
                raise ConnectionResetError("the store hung up")
            chunk = self.data[self.offset : self.offset + size]
            self.offset += len(chunk)
            return chunk


async def drain(ahead: ReadAhead) -> AsyncIterator[bytes]:
    while (chunk := await ahead.next_chunk()) is not None:
        yield chunk


async def test_yields_exactly_the_bytes_in_order(executor: ThreadPoolExecutor) -> None:
    data = bytes(range(256)) * 100  # 25,600 bytes: 26 chunks of 1,000, the last one short
    ahead = ReadAhead(Body(data).read, len(data), executor, chunk_size=1000, depth=3)
    chunks = [chunk async for chunk in drain(ahead)]
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [1000] * 25 + [600]
    await ahead.settle()


async def test_reads_no_further_than_the_length(executor: ThreadPoolExecutor) -> None:
    """A range: the body may hold more, but only `length` bytes are asked for and given."""
    data = bytes(range(256)) * 40
    body = Body(data)
    ahead = ReadAhead(body.read, 2500, executor, chunk_size=1000, depth=4)
    chunks = [chunk async for chunk in drain(ahead)]
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert b"".join(chunks) == data[:2500]
    assert body.offset == 2500
    await ahead.settle()


async def test_never_holds_more_than_depth_chunks(executor: ThreadPoolExecutor) -> None:
    body = Body(b"\1" * 100_000)
    ahead = ReadAhead(body.read, 100_000, executor, chunk_size=1000, depth=3)
    taken = 0
    for _ in range(10):
        await asyncio.sleep(0.02)  # a slow client: the reader has all the time it wants
        assert body.reads - taken <= 3  # read but not yet taken: never more than the depth
        assert await ahead.next_chunk() is not None
        taken += 1
    await ahead.settle()
    assert body.reads - taken <= 3


async def test_a_full_room_frees_the_thread_for_other_streams() -> None:
    """One reader thread, two streams: the first one's client takes nothing, yet the second
    stream is read to its end (a reading job returns when its room is full, never waits)."""
    with ThreadPoolExecutor(1) as one_thread:
        stalled = ReadAhead(Body(b"\0" * 10_000).read, 10_000, one_thread, chunk_size=100, depth=2)
        data = bytes(range(256)) * 20
        other = ReadAhead(Body(data).read, len(data), one_thread, chunk_size=100, depth=2)
        got = await asyncio.wait_for(_joined(other), timeout=5)
        assert got == data
        await stalled.settle()
        await other.settle()


async def _joined(ahead: ReadAhead) -> bytes:
    return b"".join([chunk async for chunk in drain(ahead)])


async def test_a_failing_read_ends_the_stream_after_what_was_read(
    executor: ThreadPoolExecutor,
) -> None:
    data = bytes(range(256)) * 40
    body = Body(data, fail_at=3)
    ahead = ReadAhead(body.read, len(data), executor, chunk_size=1000, depth=4)
    assert await ahead.next_chunk() == data[:1000]
    assert await ahead.next_chunk() == data[1000:2000]
    with pytest.raises(ConnectionResetError):
        await ahead.next_chunk()
    with pytest.raises(ConnectionResetError):  # and stays failed: never a short clean end
        await ahead.next_chunk()
    await ahead.settle()
    assert body.reads == 3  # nothing read after the failure


async def test_a_body_that_ends_early_is_body_ended(executor: ThreadPoolExecutor) -> None:
    ahead = ReadAhead(Body(b"\0" * 1500).read, 4000, executor, chunk_size=1000, depth=2)
    assert len(await ahead.next_chunk() or b"") == 1000
    assert len(await ahead.next_chunk() or b"") == 500
    with pytest.raises(BodyEnded):
        await ahead.next_chunk()
    await ahead.settle()


async def test_settle_waits_for_the_read_in_flight_and_stops_reading(
    executor: ThreadPoolExecutor,
) -> None:
    release = threading.Event()
    entered = threading.Event()
    body = Body(b"\0" * 10_000)

    def slow_read(size: int) -> bytes:
        if body.reads == 1:  # the second read hangs until released, as a stalled socket does
            entered.set()
            release.wait(5)
        return body.read(size)

    ahead = ReadAhead(slow_read, 10_000, executor, chunk_size=1000, depth=4)
    assert await ahead.next_chunk() is not None
    assert await asyncio.to_thread(entered.wait, 5)
    settling = asyncio.ensure_future(ahead.settle())
    await asyncio.sleep(0.05)
    assert not settling.done()  # the body must not be closed under the hung read
    release.set()
    await asyncio.wait_for(settling, timeout=5)
    reads = body.reads
    await asyncio.sleep(0.05)
    assert body.reads == reads == 2  # stopped: no read after the one in flight
