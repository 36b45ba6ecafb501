"""Zero-copy file bodies: the ASGI `http.response.zerocopysend` extension on uvicorn's protocol.

A large clip copied through Python costs two copies per byte (page cache → a buffer of ours →
the socket) and a trip through the event loop per chunk; nginx's sendfile costs one copy and no
trip. So the server advertises the extension (gateway/protocol.py), and a footage response
(gateway/delivery.py) sends each slice of a clip after its first chunk as

    {"type": "http.response.zerocopysend", "file": <has fileno()>, "offset": o, "count": n,
     "more_body": True}

which is served here by `os.sendfile` from the clip's own descriptor to the connection's socket.

Three things make that safe on a socket uvloop owns:
- **Order.** The response's head and first chunk went through the transport; the socket is
  written directly only once the transport has flushed all of it, and nothing else writes to
  the connection until the response's last message.
- **Descriptors.** The thread works on duplicates of the socket's and the clip's descriptors,
  made for each message and closed after it. Should the connection close meanwhile, its number
  may be reused by another client's socket; a duplicate still names the old one, whose peer is
  gone, so a write fails instead of sending footage to someone else.
- **Time.** `os.sendfile` may wait for the disk, so it runs in a worker thread; each turn in the
  thread ends within TURN_SECONDS, and at once when the socket is full: waiting for the client
  to read is done on the event loop (`_writable`), so clients that read nothing hold no thread
  and a cancelled response (the client left, the server is stopping) is let go promptly.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from typing import Any, Protocol, cast, runtime_checkable

import anyio.to_thread
from anyio import CapacityLimiter

ZEROCOPY_SEND = "http.response.zerocopysend"
TURN_SECONDS = 0.25
# Threads blocked on a slow client's socket hold a slot for at most TURN_SECONDS; their own
# limiter (one per event loop) keeps them from starving the default pool database calls use.
THREADS = 32
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


@runtime_checkable
class SupportsFileno(Protocol):
    """An opened local file (gateway/storage/fs.py's FileClip); S3 clips have none."""

    def fileno(self) -> int: ...


def file_of(opened: object) -> SupportsFileno | None:
    """`opened` as a file sendfile can read (a local clip), else None (an S3 clip).

    What isinstance(opened, SupportsFileno) asks, without typing's runtime protocol check:
    about 9 µs a request on the play path (docs/benchmarks.md).
    """
    return cast(SupportsFileno, opened) if getattr(opened, "fileno", None) is not None else None


class ZeroCopyFailed(OSError):
    """A zero-copy send that stopped short; `sent` bytes of it did reach the socket."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


def zerocopy_message(file: SupportsFileno, offset: int, count: int) -> dict[str, Any]:
    """The ASGI message sending `count` bytes of `file` from `offset`; more body follows."""
    return {
        "type": ZEROCOPY_SEND,
        "file": file,
        "offset": offset,
        "count": count,
        "more_body": True,
    }


def advertise(scope: dict[str, Any], transport: asyncio.BaseTransport) -> None:
    """Add the extension to a request's scope when the connection is a plain TCP socket."""
    if transport.get_extra_info("sslcontext") is None and transport.get_extra_info("socket"):
        scope.setdefault("extensions", {})[ZEROCOPY_SEND] = {}


def serve_zerocopy(cycle: Any) -> None:
    """Make a uvicorn RequestResponseCycle accept zerocopysend messages as well as its own.

    `run_asgi` passes `self.send` to the app when the request's task first runs, so an
    instance attribute set now is what the app gets (the pipelined requests' too).
    """
    plain_send = cycle.send

    async def send(message: Any) -> None:
        if message["type"] != ZEROCOPY_SEND:
            await plain_send(message)
            return
        await _send_file(cycle, message)
        if not message.get("more_body", False):
            await plain_send({"type": "http.response.body", "body": b"", "more_body": False})

    cycle.send = send


async def _send_file(cycle: Any, message: dict[str, Any]) -> None:
    """sendfile `message`'s slice; `message["sent"]` says how much of it left, however the send
    ends (a cancelled one too: the turn that was running when a disconnect was seen may have
    sent more, and the client may well read it, through our duplicate of the socket)."""
    message["sent"] = 0
    if cycle.disconnected:
        # Unlike uvicorn's own send, say so: the caller counts what it sends as sent.
        raise ZeroCopyFailed("the client disconnected", 0)
    if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding:
        raise RuntimeError("zerocopysend needs a started response with a Content-Length")
    offset, count = int(message.get("offset", 0)), int(message["count"])
    if count > cycle.expected_content_length:
        raise RuntimeError("Response content longer than Content-Length")
    if cycle.scope["method"] == "HEAD" or count <= 0:
        return
    await _flushed(cycle)
    try:
        await _send_slice(cycle, message, offset, count)
    finally:
        # What left, however the send ended: a caller that cancels a slow slice (to re-check
        # its permission) goes on from where it stopped, within the same Content-Length.
        cycle.expected_content_length -= message["sent"]


async def _send_slice(cycle: Any, message: dict[str, Any], offset: int, count: int) -> None:
    socket_fd = os.dup(cycle.transport.get_extra_info("socket").fileno())
    try:
        file_fd = os.dup(message["file"].fileno())
        try:
            sent = 0
            while sent < count:
                sent += await anyio.to_thread.run_sync(
                    _send_turn, socket_fd, file_fd, offset + sent, count - sent, limiter=_limiter()
                )
                message["sent"] = sent  # before the next turn's checkpoint may raise Cancelled
                if sent < count:  # the socket is full: wait on the event loop, not in a thread
                    await _writable(socket_fd)
        except OSError as exc:
            partial = exc.sent if isinstance(exc, ZeroCopyFailed) else 0
            message["sent"] = sent + partial
            raise ZeroCopyFailed(str(exc), sent + partial) from exc
        finally:
            os.close(file_fd)
    finally:
        os.close(socket_fd)


async def _flushed(cycle: Any) -> None:
    """Wait until the transport has written everything it holds to the socket."""
    if cycle.flow.write_paused:
        await cycle.flow.drain()
    pause = 0.0
    while cycle.transport.get_write_buffer_size() and not cycle.disconnected:
        await asyncio.sleep(pause)  # a few loop turns flush it; a stalled client waits longer
        pause = min(0.05, pause * 2 or 0.0005)
    if cycle.disconnected:
        raise ZeroCopyFailed("the client disconnected", 0)


async def _writable(fd: int) -> None:
    """Until the socket takes more (or has failed: the next sendfile raises), on the loop.

    A client that reads nothing costs a registered descriptor here, not one of THREADS: held
    in a thread, 200 stalled clients kept another's 12 MB clip waiting 21 s for turns.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


def _send_turn(socket_fd: int, file_fd: int, offset: int, count: int) -> int:
    """sendfile until `count` bytes are sent, the socket is full, or TURN_SECONDS pass (a slow
    disk); the bytes sent (≥ 0). It never waits for the client."""
    deadline = time.monotonic() + TURN_SECONDS
    sent = 0
    while sent < count and time.monotonic() < deadline:
        try:
            written = os.sendfile(socket_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:
            break
        if written == 0:  # the file ends before Content-Length does: it shrank
            raise ZeroCopyFailed("the clip ended early", sent)
        sent += written
    return sent


def _limiter() -> CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(THREADS)
    return limiter
