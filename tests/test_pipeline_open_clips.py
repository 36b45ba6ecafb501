"""The flow opens a clip once per view (docs/benchmarks.md) and closes it on every way out.

File-store gateways run in this process (tests.support.server), so an fd left open on the clip
shows in /proc/self/fd. Each gateway's storage is also wrapped to count the opened clips that
were closed, since a FileClip dropped unclosed closes its fd when collected and would hide a
path that forgets to (and an S3 gateway in redirect mode holds no fd at all).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from gateway.audit.events import Event
from gateway.calls import FootageCall
from gateway.errors import AuditUnavailable
from gateway.outcomes import Recorder
from gateway.storage.base import ObjectInfo, OpenClip, Storage
from gateway.types import Action, ClipRef
from tests.support.faults import services_of, wait_for_complete
from tests.support.server import Live, make_env, start_live, wait_for

CLIP = "20261127T101500Z.mp4"
EMPTY = "20261127T111500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
MIB = 1024 * 1024
DATA = bytes(range(251)) * (16 * MIB // 251)


def open_paths() -> list[str]:
    """What this process's fds point at (Linux)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # fds of other threads come and go
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


@dataclass
class ClosingCount:
    """Wraps a Storage; counts the clips it opened and how many of them were closed."""

    inner: Storage
    opened: int = 0
    closed: int = 0
    wholes: list[bool] = field(default_factory=list)  # each open's `whole`

    async def open(self, clip: ClipRef, *, whole: bool = False) -> OpenClip:
        self.opened += 1
        self.wholes.append(whole)
        return _Counted(await self.inner.open(clip, whole=whole), self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class _Counted:
    inner: OpenClip
    count: ClosingCount
    done: bool = False

    @property
    def info(self) -> ObjectInfo:
        return self.inner.info

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        return self.inner.read(start, end)

    async def close(self) -> None:
        if not self.done:
            self.done = True
            self.count.closed += 1
        await self.inner.close()


@dataclass
class Files:
    live: Live
    count: ClosingCount

    def clip_path(self, clip_id: str = CLIP) -> str:
        return str(self.live.env.root / "footage" / "c1" / "front" / clip_id)

    def owner(self, **headers: str) -> dict[str, str]:
        return self.live.env.auth("alice", "customer", customer_id="c1", **headers)

    def assert_no_fd(self) -> None:
        """Every clip opened was closed, and no fd is left on one, once the server is done."""
        wait_for(lambda: not any(p.startswith(self.clip_path("")) for p in open_paths()))
        wait_for(lambda: self.count.closed == self.count.opened)
        assert self.count.opened > 0


def counted(live: Live) -> ClosingCount:
    """Put a ClosingCount in front of a live gateway's storage (the flow's only handle)."""
    flow = services_of(live).flow
    flow.storage = count = ClosingCount(flow.storage)
    return count


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    env = make_env(tmp_path_factory.mktemp("files"))
    env.put_clip("c1", "front", CLIP, DATA)
    env.put_clip("c1", "front", EMPTY, b"")
    with start_live(env) as running:
        yield Files(running, counted(running))


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", PATH, {"Range": "bytes=65536-131071"}, 206),  # one message, no watcher
        ("GET", PATH, {"Range": "bytes=0-"}, 206),  # streamed
        ("HEAD", PATH, {}, 200),
        ("GET", PATH, {"Range": f"bytes={len(DATA)}-"}, 416),
        ("GET", f"/v1/footage/c1/front/{EMPTY}", {}, 200),
    ],
)
def test_every_answer_closes_the_clip(
    files: Files, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    r = files.live.client.request(method, path, headers=files.owner(**headers))
    assert r.status_code == status
    files.assert_no_fd()


@pytest.mark.parametrize(
    ("method", "headers", "whole"),
    [
        ("GET", {}, True),  # the one answer sure to stream the whole clip
        ("GET", {"Range": "bytes=0-"}, False),
        ("GET", {"If-None-Match": '"an-etag"'}, False),  # could be a 304
        ("GET", {"If-Match": '"an-etag"'}, False),  # could be a 412
        ("HEAD", {}, False),
    ],
)
def test_only_a_plain_get_opens_the_clip_whole(
    files: Files, method: str, headers: dict[str, str], whole: bool
) -> None:
    """`whole` lets a store start the body at open (S3: GetObject, no HeadObject)."""
    files.count.wholes.clear()
    files.live.client.request(method, PATH, headers=files.owner(**headers))
    assert files.count.wholes == [whole]
    files.assert_no_fd()


def test_an_audit_failure_is_503_and_closes_the_clip(files: Files) -> None:
    store = services_of(files.live).audit.store
    real = store.append_batch

    def full(events: Any) -> Any:
        raise AuditUnavailable("The audit store is full.")

    store.append_batch = full
    try:
        r = files.live.client.get(PATH, headers=files.owner())
    finally:
        store.append_batch = real
    assert r.status_code == 503 and DATA[:64] not in r.content
    files.assert_no_fd()


def test_a_client_that_leaves_mid_stream_closes_the_clip(files: Files) -> None:
    with files.live.client.stream("GET", PATH, headers=files.owner()) as r:
        assert next(r.iter_raw())
    complete = wait_for_complete(files.live.env.settings.database_url, r.headers["x-request-id"])
    assert complete["detail"]["completed"] is False
    files.assert_no_fd()


def test_a_clip_that_shrinks_mid_stream_closes_it(tmp_path: Any) -> None:
    env = make_env(tmp_path)
    env.put_clip("c1", "front", CLIP, DATA)
    with start_live(env) as live:
        files = Files(live, counted(live))
        with live.client.stream("GET", PATH, headers=files.owner()) as r:
            chunks = r.iter_raw()
            next(chunks)
            os.truncate(files.clip_path(), MIB)
            with contextlib.suppress(httpx.HTTPError):
                for _ in chunks:
                    pass
        complete = wait_for_complete(env.settings.database_url, r.headers["x-request-id"])
        assert complete["detail"]["completed"] is False
        files.assert_no_fd()


# --- cancellation, with the flow called directly -------------------------------------------------


@dataclass
class StuckAudit:
    """An audit log whose appends never return (until cancelled)."""

    started: anyio.Event = field(default_factory=anyio.Event)

    async def append(self, event: Event, companions: object = ()) -> Event:
        self.started.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover


def footage_call(files: Files) -> FootageCall:
    return FootageCall(
        method="GET",
        action=Action.VIEW,
        customer_id="c1",
        camera_id="front",
        clip_id=CLIP,
        authorization=files.owner()["Authorization"],
        purpose=None,
        justification=None,
        range_header=None,
        request_id="req-cancelled",
        client_ip="127.0.0.1",
        user_agent=None,
    )


@pytest.mark.anyio
async def test_a_view_cancelled_while_auditing_closes_the_clip(files: Files) -> None:
    audit = StuckAudit()
    flow = services_of(files.live).flow
    flow = dataclasses.replace(flow, recorder=Recorder(audit, flow.metrics))
    async with anyio.create_task_group() as group:
        group.start_soon(flow.view, footage_call(files))
        await audit.started.wait()  # the clip is open, the decision not yet committed
        assert open_paths().count(files.clip_path()) == 1
        group.cancel_scope.cancel()
    assert files.clip_path() not in open_paths()
    assert files.count.closed == files.count.opened


# --- S3: a plain GET opens the clip whole (one GetObject), closed on every way out ---------------


def test_an_s3_clip_opened_whole_is_closed_on_every_way_out(
    tmp_path: Any, s3_bucket: tuple[str, str], aws_env: None
) -> None:
    endpoint, bucket = s3_bucket
    env = make_env(
        tmp_path, {"FOOTGW_STORAGE": f"s3://{bucket}/footage", "FOOTGW_S3_ENDPOINT_URL": endpoint}
    )
    env.put_clip("c1", "front", CLIP, DATA)
    with start_live(env) as live:
        counting = counted(live)
        owner = env.auth("alice", "customer", customer_id="c1")
        whole = live.client.get(PATH, headers=owner)
        assert whole.status_code == 200 and whole.content == DATA
        with live.client.stream("GET", PATH, headers=owner) as r:  # the client leaves early
            assert next(r.iter_raw())
        store = services_of(live).audit.store
        real = store.append_batch
        store.append_batch = lambda events: (_ for _ in ()).throw(AuditUnavailable("full"))
        try:
            failed = live.client.get(PATH, headers=owner)
        finally:
            store.append_batch = real
        assert failed.status_code == 503 and DATA[:64] not in failed.content
        wait_for(lambda: counting.closed == counting.opened == 3)
        assert counting.wholes == [True, True, True]


# --- redirect mode: a presigned URL, and the opened clip closed all the same ---------------------


def test_a_redirect_closes_the_clip(
    tmp_path: Any, s3_bucket: tuple[str, str], aws_env: None
) -> None:
    endpoint, bucket = s3_bucket
    env = make_env(
        tmp_path,
        {
            "FOOTGW_STORAGE": f"s3://{bucket}/footage",
            "FOOTGW_S3_ENDPOINT_URL": endpoint,
            "FOOTGW_DELIVERY": "redirect",
        },
    )
    env.put_clip("c1", "front", CLIP, b"footage")
    with start_live(env) as live:
        counting = counted(live)
        owner = env.auth("alice", "customer", customer_id="c1")
        for method, status in (("GET", 307), ("HEAD", 200)):
            assert live.client.request(method, PATH, headers=owner).status_code == status
            wait_for(lambda: counting.closed == counting.opened)
        assert counting.opened == 2
        assert counting.wholes == [False, False]  # S3 serves the bytes: nothing to start
