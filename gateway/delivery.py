"""Footage responses: a 200/206 stream with back-pressure, a presigned redirect,
and the empty X-Accel-Redirect answer that lets nginx send the file itself (accel_response).

FootageStream is a pure ASGI response (STYLE.md §1). It reads the clip only as fast as the client
takes it (one `await send` per chunk of at most CHUNK_SIZE), stops reading the moment the client
goes away, and tells the caller how it ended through `on_complete(bytes_sent, completed)`, which
the audit step turns into the `access.complete` event (contract §7). A body that fits in its
first chunk (a short range) is sent in one message, with nothing to watch or stop
(docs/benchmarks.md).
Before each further chunk it asks `recheck` whether its permission still holds, and stops short
when it no longer does (gateway/streamguard.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from urllib.parse import quote

import anyio
import anyio.lowlevel
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, StorageUnavailable
from gateway.ranges import ByteRange
from gateway.storage.base import ObjectInfo
from gateway.types import ClipRef
from gateway.zerocopy import ZEROCOPY_SEND, SupportsFileno, zerocopy_message

ChunkSource = Callable[[int, int], AsyncIterator[bytes]]
"""Opens a stream of bytes start..end inclusive, e.g. an opened clip's `read` (OpenClip)."""
OnComplete = Callable[[int, bool], Awaitable[None]]
"""Told once how a response ended: (bytes_sent, completed)."""
Release = Callable[[], Awaitable[None]]
"""Called once when a response is done with its source, e.g. an opened clip's close()."""
Recheck = Callable[[], Awaitable[bool]]
"""Asked before each further chunk: False ends the stream short (its permission has ended)."""

CACHE_CONTROL = "private, no-store"  # contract §5: footage is never cached by anyone in between
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CONTENT_TYPES = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "ts": "video/mp2t",
    "m3u8": "application/vnd.apple.mpegurl",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
}

log = structlog.get_logger(__name__)


def content_type_for(clip_id: str) -> str:
    """The Content-Type for a clip, by its extension."""
    _, dot, extension = clip_id.rpartition(".")
    return (
        CONTENT_TYPES.get(extension.lower(), DEFAULT_CONTENT_TYPE) if dot else DEFAULT_CONTENT_TYPE
    )


def redirect_response(url: str, headers: Mapping[str, str] | None = None) -> Response:
    """A 307 to a presigned URL; 307 keeps the method and the client resends its Range header."""
    return Response(
        status_code=307,
        headers={**(headers or {}), "Location": url, "Cache-Control": CACHE_CONTROL},
    )


def not_modified_response(info: ObjectInfo, headers: Mapping[str, str]) -> Response:
    """A 304 to an `If-None-Match` naming the clip as it is: its validators, no body."""
    return Response(
        status_code=304,
        headers={
            **headers,
            "ETag": info.etag,
            "Last-Modified": format_datetime(info.last_modified.astimezone(UTC), usegmt=True),
            "Cache-Control": CACHE_CONTROL,
        },
    )


def accel_path(prefix: str, clip: ClipRef) -> str:
    """The internal nginx URI of a clip: `prefix` + customer/camera/clip, from validated ids only.

    The flow validated the ids already; checking again here keeps this header, which nginx
    obeys blindly, from ever carrying anything else ("..", "?", "%", CR/LF) should a future
    caller forget. Quoting is defence in depth: valid ids have nothing to quote.
    """
    if not clip.has_valid_ids():
        raise ValueError(f"refusing an X-Accel-Redirect for an invalid clip ref {clip.key!r}")
    parts = (clip.customer_id, clip.camera_id, clip.clip_id)
    return prefix + "/".join(quote(part, safe="") for part in parts)


def accel_response(
    path: str,
    info: ObjectInfo,
    byte_range: ByteRange | None,
    content_type: str,
    headers: Mapping[str, str],
) -> Response:
    """An empty 200 telling nginx to serve `path` itself (FOOTGW_DELIVERY=accel).

    nginx answers the client from its `internal;` location, applying the client's Range there.
    Of our headers it keeps only Content-Type, Cache-Control and Accept-Ranges on its own; the
    internal location adds X-Audit-Event-ID, X-Request-ID and ETag back from `$upstream_http_*`
    (deploy/nginx-accel.conf); Last-Modified is nginx's, from the same file's mtime.
    Accept-Ranges goes with a range only: nginx adds its own to a 200 (a copy would make two)
    but none to a 206.
    """
    extra = {"Accept-Ranges": "bytes"} if byte_range is not None else {}
    return Response(
        status_code=200,
        headers={
            **headers,
            **extra,
            "X-Accel-Redirect": path,
            "Content-Type": content_type,
            "ETag": info.etag,
            "Last-Modified": format_datetime(info.last_modified.astimezone(UTC), usegmt=True),
            "Cache-Control": CACHE_CONTROL,
        },
    )


def footage_headers(
    info: ObjectInfo,
    byte_range: ByteRange | None,
    content_type: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a 200 (byte_range None) or 206 footage response."""
    length = info.size if byte_range is None else byte_range.length
    headers = {
        **(extra or {}),
        "Content-Type": content_type,
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "ETag": info.etag,
        "Last-Modified": format_datetime(info.last_modified.astimezone(UTC), usegmt=True),
        "Cache-Control": CACHE_CONTROL,
    }
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range(info.size)
    return headers


def footage_response(
    *,
    method: str,
    info: ObjectInfo,
    byte_range: ByteRange | None,
    chunks: ChunkSource,
    on_complete: OnComplete,
    release: Release | None = None,
    content_type: str | None = None,
    clip_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    recheck: Recheck | None = None,
    file: SupportsFileno | None = None,
) -> FootageStream:
    """A FootageStream; the Content-Type is `content_type`, else guessed from `clip_id`.
    `file`, when the clip is a local file, lets the server send it by sendfile."""
    return FootageStream(
        method=method,
        info=info,
        byte_range=byte_range,
        chunks=chunks,
        on_complete=on_complete,
        release=release,
        content_type=content_type or content_type_for(clip_id or ""),
        headers=headers,
        recheck=recheck,
        file=file,
    )


@dataclass(slots=True)
class _Progress:
    """How far one response got; read by on_complete however the stream ended."""

    sent: int = 0
    completed: bool = False


class FootageStream(Response):
    """A 200 or 206 footage response streamed from storage; see the module docstring.

    Storage errors before the first byte (a clip deleted after open(), an unreachable store)
    are raised from __call__ before any header is sent, after on_complete(0, False), so the
    app's GatewayError handler still answers 404/502. Once headers are sent nothing is raised:
    the stream stops, the server closes the connection (the client sees a short body), and
    on_complete reports completed=False. However it ends, `release` is called once, before
    on_complete.
    """

    def __init__(
        self,
        *,
        method: str,
        info: ObjectInfo,
        byte_range: ByteRange | None,
        chunks: ChunkSource,
        on_complete: OnComplete,
        release: Release | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
        recheck: Recheck | None = None,
        file: SupportsFileno | None = None,
    ) -> None:
        self.status_code = 200 if byte_range is None else 206
        self.background = None
        self.method = method.upper()
        self.start = 0 if byte_range is None else byte_range.start
        self.length = info.size if byte_range is None else byte_range.length
        self.chunks = chunks
        self.extra_headers = dict(headers or {})
        self.on_complete = on_complete
        self.release = release
        self.recheck = recheck
        self.file = file
        self.init_headers(footage_headers(info, byte_range, content_type, headers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        progress = _Progress()
        try:
            # The bytes after the first chunk leave by sendfile where the server offers it.
            zero_copy = ZEROCOPY_SEND in scope.get("extensions", {})
            await self._respond(receive, send, progress, self.file if zero_copy else None)
        finally:
            # Shielded: a cancelled request must still close its source and leave its
            # access.complete event.
            with anyio.CancelScope(shield=True):
                await self._release()
                await self._report(progress)

    async def _release(self) -> None:
        if self.release is None:
            return
        try:
            await self.release()
        except Exception:
            log.warning("footage.release_failed", exc_info=True)

    async def _report(self, progress: _Progress) -> None:
        try:
            await self.on_complete(progress.sent, progress.completed)
        except Exception:
            # Headers may be out already; raising now could only break the connection.
            log.exception("footage.on_complete_failed", bytes_sent=progress.sent)

    async def _respond(
        self, receive: Receive, send: Send, progress: _Progress, file: SupportsFileno | None
    ) -> None:
        if self.method == "HEAD" or self.length == 0:
            await self._send_headers_only(send, progress)
            return
        chunks = self.chunks(self.start, self.start + self.length - 1)
        try:
            first = await self._first_chunk(chunks)
            if len(first) >= self.length:
                await self._send_whole(first, send, progress)
            else:
                await self._stream(first, chunks, receive, send, progress, file)
        finally:
            with anyio.CancelScope(shield=True):
                await _aclose(chunks)

    async def _first_chunk(self, chunks: AsyncIterator[bytes]) -> bytes:
        """Pulled before any header is sent, so a storage error here is still a clean 404/502."""
        try:
            chunk = await _next_chunk(chunks)
            if not chunk:
                raise StorageUnavailable("The footage store returned an empty clip.")
        except GatewayError as exc:
            # The error response is still a footage response: keep its request and audit ids.
            exc.headers.update({**self.extra_headers, "Cache-Control": CACHE_CONTROL})
            raise
        return chunk

    async def _send_start(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )

    async def _send_headers_only(self, send: Send, progress: _Progress) -> None:
        """HEAD, or an empty clip: the headers and an empty body, storage never read."""
        with suppress(OSError, ClientDisconnect):  # ASGI 2.4: the client left already
            await self._send_start(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            progress.completed = True

    async def _send_whole(self, body: bytes, send: Send, progress: _Progress) -> None:
        """The whole body as one final message: no task group, no disconnect watcher.

        With nothing left to read there is nothing to stop, and a task group plus a watcher
        task per response was a large share of a short range's cost (docs/benchmarks.md).
        """
        if len(body) > self.length:
            body = body[: self.length]  # never send more than Content-Length promised
        with suppress(OSError, ClientDisconnect):  # ASGI 2.4: the client left already
            await self._send_start(send)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            progress.sent = len(body)
            progress.completed = True

    async def _stream(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        receive: Receive,
        send: Send,
        progress: _Progress,
        file: SupportsFileno | None,
    ) -> None:
        """Send every chunk, stopping early when the client disconnects or storage fails."""
        async with anyio.create_task_group() as group:
            # ASGI servers before spec 2.4 (uvicorn today) drop sends after a disconnect silently,
            # so the disconnect is only seen as an `http.disconnect` on receive (as in starlette's
            # StreamingResponse): watch for it and cancel the pump.
            group.start_soon(_watch_disconnect, receive, group.cancel_scope)
            await self._pump(first, chunks, send, progress, file)
            group.cancel_scope.cancel()

    async def _pump(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        send: Send,
        progress: _Progress,
        file: SupportsFileno | None,
    ) -> None:
        # Every failure is caught here, inside the task group, so none is wrapped in an
        # ExceptionGroup and none escapes after headers are sent.
        try:
            await self._send_start(send)
            await self._send_chunk(first, send, progress)
            pieces = _Slices()
            while progress.sent < self.length:
                # A server that drops sends after a disconnect and a source that never blocks
                # would otherwise never yield, and the disconnect watcher would never run.
                await anyio.lowlevel.checkpoint()
                if self.recheck is not None and not await self.recheck():
                    return  # the permission ended: stop short, as a failed store does
                if file is None:
                    await self._send_chunk(await _next_chunk(chunks), send, progress)
                    continue
                count = min(pieces.size, self.length - progress.sent)
                started = time.perf_counter()
                message = zerocopy_message(file, self.start + progress.sent, count)
                done = False
                try:
                    # A slice that outlasts SLICE_SECONDS (the client slowed down) is cut
                    # there, so the permission is re-checked on time whatever its size.
                    with anyio.move_on_after(SLICE_SECONDS):
                        await send(message)
                        done = True
                finally:
                    # Cancelled (the client left, the server stops) or failed, part of the
                    # slice may have left all the same: the server says how much.
                    progress.sent += count if done else _partly_sent(message)
                pieces.took(time.perf_counter() - started)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            progress.completed = True
        except (OSError, ClientDisconnect):
            pass  # ASGI spec 2.4 servers raise from send when the client is gone
        except Exception:
            log.warning("footage.stream_failed", bytes_sent=progress.sent, exc_info=True)

    async def _send_chunk(self, chunk: bytes, send: Send, progress: _Progress) -> None:
        remaining = self.length - progress.sent
        if len(chunk) > remaining:
            chunk = chunk[:remaining]  # never send more than Content-Length promised
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        progress.sent += len(chunk)


SLICE_SECONDS = 1.0
"""The longest one zero-copy send may run before the stream re-checks its permission (which
is due every RECHECK_SECONDS, gateway/streamguard.py); a cut slice goes on from where it stopped."""


class _Slices:
    """How much of a clip each zero-copy send asks for: about a tenth of a second's worth.

    Permission is rechecked between slices, so a slow client's slices stay small (a revoked
    grant stops it soon), and a fast one's grow, so its cost per byte stays nginx's.
    """

    SMALLEST = 1024 * 1024
    LARGEST = 16 * 1024 * 1024

    def __init__(self) -> None:
        self.size = self.SMALLEST

    def took(self, seconds: float) -> None:
        if seconds < 0.05:
            self.size = min(self.size * 2, self.LARGEST)
        elif seconds > 0.2:
            self.size = max(self.size // 2, self.SMALLEST)


def _partly_sent(message: Mapping[str, object]) -> int:
    """The bytes a zero-copy send that did not finish got out (gateway/zerocopy.py)."""
    sent = message.get("sent", 0)
    return sent if isinstance(sent, int) else 0


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        # Storage promised `length` bytes (Content-Length is set): ending early is a failure.
        raise StorageUnavailable("The footage store ended the clip early.") from None


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    """Close the storage stream (its fd or HTTP body), if it can be closed."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.warning("footage.close_failed", exc_info=True)


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    # A broken receive channel means the same as a disconnect.
    with suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    scope.cancel()
