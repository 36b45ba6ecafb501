"""FootageStream through a real uvicorn on an ephemeral port, driven by httpx over real sockets."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog.testing
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.delivery import (
    CACHE_CONTROL,
    ChunkSource,
    content_type_for,
    footage_response,
    redirect_response,
)
from gateway.errors import GatewayError, NotFound, RangeNotSatisfiable, StorageUnavailable
from gateway.ranges import parse_range
from gateway.storage.base import CHUNK_SIZE, ObjectInfo
from gateway.storage.fs import FileStorage
from gateway.types import ClipRef, clip_recorded_at

CLIP_ID = "20261128T101500Z.mp4"
MODIFIED = datetime(2026, 11, 28, 10, 15, 0, tzinfo=UTC)
EXTRA = {"X-Request-ID": "req-123", "X-Audit-Event-ID": "evt-456"}
WAIT = 10.0  # seconds: an upper bound for waits on events, never a synchronisation sleep


def pattern(size: int) -> bytes:
    """Bytes that differ from their neighbours, so a misplaced offset cannot go unnoticed."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


@dataclass
class Scenario:
    """What the test app serves next, and what it observed (shared with the server thread)."""

    info: ObjectInfo
    chunks: ChunkSource
    completions: queue.Queue[tuple[int, bool]] = field(default_factory=queue.Queue)
    closed: threading.Event = field(default_factory=threading.Event)
    body_sizes: list[int] = field(default_factory=list)
    releases: queue.Queue[None] = field(default_factory=queue.Queue)

    async def on_complete(self, bytes_sent: int, completed: bool) -> None:
        assert self.releases.qsize() == 1, "the source is released before on_complete"
        self.completions.put((bytes_sent, completed))

    async def release(self) -> None:
        self.releases.put(None)

    def completion(self) -> tuple[int, bool]:
        """The one on_complete report of the last response."""
        result = self.completions.get(timeout=WAIT)
        assert self.completions.empty(), "on_complete was called more than once"
        return result


def memory_scenario(data: bytes) -> Scenario:
    """Serves `data` from memory in CHUNK_SIZE pieces, and notes when its stream is closed."""
    scenario: Scenario

    async def chunks(start: int, end: int) -> AsyncIterator[bytes]:
        try:
            for offset in range(start, end + 1, CHUNK_SIZE):
                yield data[offset : min(offset + CHUNK_SIZE, end + 1)]
        finally:
            scenario.closed.set()

    scenario = Scenario(ObjectInfo(len(data), '"etag-1"', MODIFIED), chunks)
    return scenario


def zeros_scenario(size: int) -> Scenario:
    """Serves `size` zero bytes without holding them: a large clip for disconnect tests."""
    scenario: Scenario
    block = bytes(CHUNK_SIZE)

    async def chunks(start: int, end: int) -> AsyncIterator[bytes]:
        try:
            for offset in range(start, end + 1, CHUNK_SIZE):
                yield block[: min(CHUNK_SIZE, end + 1 - offset)]
        finally:
            scenario.closed.set()

    scenario = Scenario(ObjectInfo(size, '"zeros"', MODIFIED), chunks)
    return scenario


async def clip_endpoint(request: Request) -> Response:
    scenario: Scenario = request.app.state.scenario
    try:
        byte_range = parse_range(request.headers.get("range"), scenario.info.size)
    except RangeNotSatisfiable as exc:
        headers = {**EXTRA, **exc.headers}  # as the gateway's error handler sends them
        return Response(status_code=416, headers=headers)
    return footage_response(
        method=request.method,
        info=scenario.info,
        byte_range=byte_range,
        chunks=scenario.chunks,
        clip_id=CLIP_ID,
        headers=EXTRA,
        on_complete=scenario.on_complete,
        release=scenario.release,
    )


async def redirect_endpoint(_request: Request) -> Response:
    return redirect_response("https://s3.example/b/k?X-Amz-Signature=abc%2Fdef", EXTRA)


async def gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    body = {"error": {"code": exc.code, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


class RecordBodySizes:
    """Pure ASGI middleware noting the size of every body message the app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                scope["app"].state.scenario.body_sizes.append(len(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, recording_send)


def build_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/clip", clip_endpoint, methods=["GET", "HEAD"]),
            Route("/redirect", redirect_endpoint),
        ],
        exception_handlers={GatewayError: gateway_error},
    )
    app.add_middleware(RecordBodySizes)
    return app


class ThreadedServer(uvicorn.Server):
    """uvicorn in a thread; `ready` is set once its sockets listen."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Served:
    app: Starlette
    url: str

    def serve(self, scenario: Scenario) -> Scenario:
        self.app.state.scenario = scenario
        return scenario


@pytest.fixture(scope="module", params=["h11", "httptools"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The test app on 127.0.0.1:<ephemeral>, once per uvicorn HTTP implementation."""
    app = build_app()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=request.param,
        ws="none",
        lifespan="off",
        log_level="critical",
    )
    server = ThreadedServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(WAIT), "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(WAIT)


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=WAIT) as http:
        yield http


def assert_footage_headers(response: httpx.Response, scenario: Scenario) -> None:
    headers = response.headers
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"] == scenario.info.etag
    assert parsedate_to_datetime(headers["last-modified"]) == MODIFIED
    assert headers["last-modified"].endswith(" GMT")
    assert headers["cache-control"] == CACHE_CONTROL
    assert headers["content-type"] == "video/mp4"
    assert headers["x-request-id"] == "req-123"
    assert headers["x-audit-event-id"] == "evt-456"


def test_whole_clip_is_200(served: Served, client: httpx.Client) -> None:
    data = pattern(2 * CHUNK_SIZE + 10)
    scenario = served.serve(memory_scenario(data))
    response = client.get("/clip")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert "content-range" not in response.headers
    assert_footage_headers(response, scenario)
    assert scenario.completion() == (len(data), True)
    assert scenario.closed.is_set()


def test_one_range_is_206(served: Served, client: httpx.Client) -> None:
    data = pattern(3 * CHUNK_SIZE)
    scenario = served.serve(memory_scenario(data))
    response = client.get("/clip", headers={"Range": f"bytes=10-{CHUNK_SIZE + 19}"})
    assert response.status_code == 206
    assert response.content == data[10 : CHUNK_SIZE + 20]
    assert response.headers["content-range"] == f"bytes 10-{CHUNK_SIZE + 19}/{len(data)}"
    assert response.headers["content-length"] == str(CHUNK_SIZE + 10)
    assert_footage_headers(response, scenario)
    assert scenario.completion() == (CHUNK_SIZE + 10, True)


def test_suffix_range(served: Served, client: httpx.Client) -> None:
    data = pattern(1000)
    scenario = served.serve(memory_scenario(data))
    response = client.get("/clip", headers={"Range": "bytes=-100"})
    assert response.status_code == 206
    assert response.content == data[-100:]
    assert response.headers["content-range"] == "bytes 900-999/1000"
    assert scenario.completion() == (100, True)


def test_malformed_range_is_ignored(served: Served, client: httpx.Client) -> None:
    data = pattern(1000)
    served.serve(memory_scenario(data))
    response = client.get("/clip", headers={"Range": "bytes=9-1"})
    assert response.status_code == 200
    assert response.content == data


def test_head_sends_headers_only(served: Served, client: httpx.Client) -> None:
    data = pattern(5000)
    scenario = served.serve(memory_scenario(data))
    response = client.head("/clip", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-length"] == "100"
    assert response.headers["content-range"] == "bytes 100-199/5000"
    assert_footage_headers(response, scenario)
    assert scenario.completion() == (0, True)
    assert not scenario.closed.is_set()  # storage was never read


def test_empty_clip_is_200_with_no_body(served: Served, client: httpx.Client) -> None:
    scenario = served.serve(memory_scenario(b""))
    response = client.get("/clip")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert scenario.completion() == (0, True)


def test_client_disconnect_stops_the_stream(served: Served, client: httpx.Client) -> None:
    size = 256 * CHUNK_SIZE  # far more than socket buffers hold, so the server must wait
    scenario = served.serve(zeros_scenario(size))
    with client.stream("GET", "/clip") as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first
    # Leaving the block mid-body closes the connection: the client has gone away.
    bytes_sent, completed = scenario.completion()
    assert completed is False
    assert 0 < bytes_sent < size
    assert scenario.closed.wait(WAIT), "the storage iterator was not closed"


def test_storage_failure_mid_stream_truncates(served: Served, client: httpx.Client) -> None:
    scenario: Scenario

    async def failing(start: int, end: int) -> AsyncIterator[bytes]:
        try:
            yield bytes(CHUNK_SIZE)
            raise StorageUnavailable("The footage store went away.")
        finally:
            scenario.closed.set()

    scenario = served.serve(Scenario(ObjectInfo(4 * CHUNK_SIZE, '"x"', MODIFIED), failing))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/clip")  # the body ends before Content-Length: the connection was closed
    assert scenario.completion() == (CHUNK_SIZE, False)
    assert scenario.closed.is_set()


def test_storage_failure_before_the_first_byte_is_a_clean_error(
    served: Served, client: httpx.Client
) -> None:
    async def missing(start: int, end: int) -> AsyncIterator[bytes]:
        raise NotFound("No such clip.")
        yield b""  # pragma: no cover - makes this an async generator

    scenario = served.serve(Scenario(ObjectInfo(100, '"x"', MODIFIED), missing))
    response = client.get("/clip")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["x-audit-event-id"] == "evt-456"
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert scenario.completion() == (0, False)


def test_on_complete_failure_does_not_break_the_response(
    served: Served, client: httpx.Client
) -> None:
    data = pattern(1000)
    scenario = served.serve(memory_scenario(data))
    logged = threading.Event()

    async def failing_on_complete(bytes_sent: int, completed: bool) -> None:
        raise RuntimeError("audit store down")

    def notice(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "footage.on_complete_failed":
            logged.set()
        return event

    scenario.on_complete = failing_on_complete  # type: ignore[method-assign]
    with structlog.testing.capture_logs(processors=[notice]) as logs:
        response = client.get("/clip")
        assert response.content == data
        assert logged.wait(WAIT)
    [failure] = [e for e in logs if e["event"] == "footage.on_complete_failed"]
    assert failure["log_level"] == "error"
    assert failure["bytes_sent"] == 1000


def test_large_stream_stays_in_small_chunks(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    size = 64 * CHUNK_SIZE
    storage = FileStorage(tmp_path)
    path = tmp_path / "cust1" / "cam1" / CLIP_ID
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.truncate(size)  # sparse: 64 MiB on paper, nothing on disk
    clip = ClipRef("cust1", "cam1", CLIP_ID, clip_recorded_at(CLIP_ID) or MODIFIED)
    info = ObjectInfo(size, '"big"', MODIFIED)

    async def chunks(start: int, end: int) -> AsyncIterator[bytes]:
        opened = await storage.open(clip)
        try:
            async with contextlib.aclosing(opened.read(start, end)) as read:  # type: ignore[type-var]
                async for chunk in read:
                    yield chunk
        finally:
            await opened.close()

    scenario = served.serve(Scenario(info, chunks))
    received = 0
    with client.stream("GET", "/clip") as response:
        for piece in response.iter_raw():
            received += len(piece)
    assert received == size
    assert scenario.completion() == (size, True)
    assert max(scenario.body_sizes) <= CHUNK_SIZE
    assert sum(scenario.body_sizes) == size
    assert str(path) not in open_paths()


def open_paths() -> list[str]:
    """What this process's fds point at (Linux)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # fds of other threads come and go
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


def test_redirect_is_307_and_not_cached(served: Served, client: httpx.Client) -> None:
    response = client.get("/redirect", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "https://s3.example/b/k?X-Amz-Signature=abc%2Fdef"
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["x-audit-event-id"] == "evt-456"


@pytest.mark.parametrize(
    ("clip_id", "expected"),
    [
        ("20261128T101500Z.mp4", "video/mp4"),
        ("20261128T101500Z.MP4", "video/mp4"),
        ("20261128T101500Z-a.mkv", "video/x-matroska"),
        ("20261128T101500Z.webm", "video/webm"),
        ("20261128T101500Z.mov", "video/quicktime"),
        ("20261128T101500Z.ts", "video/mp2t"),
        ("20261128T101500Z.m3u8", "application/vnd.apple.mpegurl"),
        ("20261128T101500Z.jpg", "image/jpeg"),
        ("20261128T101500Z.png", "image/png"),
        ("20261128T101500Z.exe", "application/octet-stream"),
        ("20261128T101500Z", "application/octet-stream"),
    ],
)
def test_content_type_by_extension(clip_id: str, expected: str) -> None:
    assert content_type_for(clip_id) == expected


# A body that fits in its first chunk goes out as one message, with no disconnect watcher
# (docs/benchmarks.md); every response, however it ends, releases its source once and reports once.


def test_a_short_body_is_one_message(served: Served, client: httpx.Client) -> None:
    data = pattern(3 * CHUNK_SIZE)
    scenario = served.serve(memory_scenario(data))
    response = client.get("/clip", headers={"Range": "bytes=100-65635"})
    assert response.status_code == 206 and response.content == data[100:65636]
    assert scenario.body_sizes == [65536]  # the whole body, sent with more_body=False
    assert scenario.completion() == (65536, True)
    assert scenario.releases.qsize() == 1
    assert scenario.closed.wait(WAIT)


def test_every_ending_releases_the_source_once(served: Served, client: httpx.Client) -> None:
    for method, size, headers in [
        ("HEAD", 1000, {}),
        ("GET", 0, {}),
        ("GET", 1000, {}),
        ("GET", 2 * CHUNK_SIZE + 1, {}),
        ("GET", 1000, {"Range": "bytes=5000-"}),  # 416: never reaches the response
    ]:
        scenario = served.serve(memory_scenario(pattern(size)))
        client.request(method, "/clip", headers=headers)
        expected = 0 if "Range" in headers else 1
        if expected:
            scenario.completion()
        assert scenario.releases.qsize() == expected, (method, size, headers)


def test_failures_release_the_source_once(served: Served, client: httpx.Client) -> None:
    async def missing(start: int, end: int) -> AsyncIterator[bytes]:
        raise NotFound("No such clip.")
        yield b""  # pragma: no cover - makes this an async generator

    scenario = served.serve(Scenario(ObjectInfo(100, '"x"', MODIFIED), missing))
    assert client.get("/clip").status_code == 404
    assert scenario.completion() == (0, False) and scenario.releases.qsize() == 1
    scenario = served.serve(zeros_scenario(256 * CHUNK_SIZE))
    with client.stream("GET", "/clip") as response:
        next(response.iter_raw())
    assert scenario.completion()[1] is False and scenario.releases.qsize() == 1


@pytest.mark.anyio
@pytest.mark.parametrize("size", [1000, 4 * CHUNK_SIZE])
async def test_a_cancelled_response_still_releases_and_reports_once(size: int) -> None:
    scenario = zeros_scenario(size)
    response = footage_response(
        method="GET",
        info=scenario.info,
        byte_range=None,
        chunks=scenario.chunks,
        on_complete=scenario.on_complete,
        release=scenario.release,
        clip_id=CLIP_ID,
    )

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async with anyio.create_task_group() as group:

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                group.cancel_scope.cancel()  # e.g. the server shuts down mid-body
                await anyio.sleep_forever()

        group.start_soon(response, {"type": "http"}, receive, send)
    assert scenario.completion() == (0, False)
    assert scenario.releases.qsize() == 1
    assert scenario.closed.is_set()
