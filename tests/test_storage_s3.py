"""S3Storage against moto's S3 server over real HTTP (tests/support/s3.py)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from gateway.errors import DeletionBlocked, NotFound, StorageUnavailable
from gateway.settings import load_settings
from gateway.storage import open_storage, presigner_of
from gateway.storage.base import CHUNK_SIZE, ListedClip, ObjectInfo, ObjectKind
from gateway.storage.s3 import S3Storage
from gateway.storage.s3_clip import READ_AHEAD_CHUNKS
from gateway.types import CameraRef, ClipRef, clip_recorded_at

pytestmark = pytest.mark.anyio

CLIP_ID = "20261128T101500Z.mp4"


def clip_ref(clip_id: str = CLIP_ID, customer: str = "cust1", camera: str = "cam1") -> ClipRef:
    recorded = clip_recorded_at(clip_id) or datetime(2026, 11, 28, tzinfo=UTC)
    return ClipRef(customer, camera, clip_id, recorded)


@pytest.fixture
async def storage(s3_bucket: tuple[str, str]) -> AsyncIterator[S3Storage]:
    endpoint, bucket = s3_bucket
    store = S3Storage(bucket, "", endpoint)
    yield store
    await store.close()


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def delete(storage: S3Storage, clip: ClipRef) -> None:
    """Delete as the owner's route and retention do: plan every version, then remove them."""
    await storage.delete(await storage.plan_deletion(clip))


async def stat(storage: S3Storage, clip: ClipRef) -> ObjectInfo:
    """What open() tells of a clip: the request path's one way to ask."""
    opened = await storage.open(clip)
    await opened.close()
    return opened.info


async def read_all(storage: S3Storage, clip: ClipRef, start: int, end: int) -> list[bytes]:
    opened = await storage.open(clip)
    try:
        return [chunk async for chunk in opened.read(start, end)]
    finally:
        await opened.close()


async def walked(storage: S3Storage) -> list[str]:
    found = [item async for item in storage.walk()]
    assert {item.kind for item in found} <= {ObjectKind.FILE}  # S3 has nothing but objects
    return [item.path for item in found]


class GetObjectSpy:
    """Records what GetObject sent and the body it got, through boto3's own event hooks."""

    def __init__(self, storage: S3Storage) -> None:
        self.ranges: list[str | None] = []
        self.bodies: list[Any] = []
        events = storage.client.meta.events
        events.register("before-send.s3.GetObject", self._before_send)
        events.register("after-call.s3.GetObject", self._after_call)

    def _before_send(self, request: Any, **_: Any) -> None:
        value = request.headers.get("Range")
        self.ranges.append(value.decode() if isinstance(value, bytes) else value)

    def _after_call(self, parsed: dict[str, Any], **_: Any) -> None:
        self.bodies.append(parsed["Body"])


async def test_put_stat_read(storage: S3Storage) -> None:
    data = bytes(range(256)) * 40
    await storage.put(clip_ref(), data)
    info = await stat(storage, clip_ref())
    assert info.size == len(data)
    assert info.etag.startswith('"') and info.etag.endswith('"')
    assert info.last_modified.tzinfo is not None
    assert b"".join(await read_all(storage, clip_ref(), 0, len(data) - 1)) == data
    assert b"".join(await read_all(storage, clip_ref(), 100, 199)) == data[100:200]


async def test_read_asks_s3_for_the_range_only(storage: S3Storage) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    await storage.put(clip_ref(), data)
    spy = GetObjectSpy(storage)
    chunks = await read_all(storage, clip_ref(), 1000, 1999)
    assert spy.ranges == ["bytes=1000-1999"]
    assert b"".join(chunks) == data[1000:2000]


async def test_open_heads_the_object_and_reads_that_version(storage: S3Storage) -> None:
    data = bytes(range(256)) * 64
    await storage.put(clip_ref(), data)
    opened = await storage.open(clip_ref())
    assert opened.info == await stat(storage, clip_ref())
    assert b"".join([c async for c in opened.read(10, 99)]) == data[10:100]
    await storage.put(clip_ref(), b"a replacement the headers would not describe")
    # If-Match the opened ETag: S3 answers 412 rather than the bytes of another object.
    with pytest.raises(StorageUnavailable, match="changed"):
        await anext(opened.read(0, 9))
    await opened.close()
    await opened.close()  # idempotent


def count_heads(storage: S3Storage) -> list[str]:
    heads: list[str] = []
    storage.client.meta.events.register(
        "before-send.s3.HeadObject", lambda **_: heads.append("HeadObject")
    )
    return heads


async def test_a_whole_open_is_one_get_whose_body_is_the_read(storage: S3Storage) -> None:
    data = bytes(range(251)) * (3 * CHUNK_SIZE // 251)
    await storage.put(clip_ref(), data)
    spy, heads = GetObjectSpy(storage), count_heads(storage)
    opened = await storage.open(clip_ref(), whole=True)
    assert opened.info == await stat(storage, clip_ref())
    heads.clear()  # stat's own HeadObject, above
    assert b"".join([c async for c in opened.read(0, len(data) - 1)]) == data
    await opened.close()
    assert spy.ranges == [None] and heads == []  # one GetObject of the whole, no HeadObject
    assert spy.bodies[0]._raw_stream.closed


async def test_a_whole_open_read_in_part_asks_for_the_part_only(storage: S3Storage) -> None:
    data = bytes(range(256)) * 64
    await storage.put(clip_ref(), data)
    spy = GetObjectSpy(storage)
    opened = await storage.open(clip_ref(), whole=True)
    assert b"".join([c async for c in opened.read(10, 99)]) == data[10:100]
    assert spy.ranges == [None, "bytes=10-99"]
    assert spy.bodies[0]._raw_stream.closed  # the whole body was closed, not read
    await opened.close()


async def test_a_whole_open_closed_unread_closes_its_body(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"\0" * (READ_AHEAD_CHUNKS + 3) * CHUNK_SIZE)
    spy = GetObjectSpy(storage)
    opened = await storage.open(clip_ref(), whole=True)
    [body] = spy.bodies
    assert not body._raw_stream.closed
    await opened.close()  # a HEAD answered, a 304, an audit failure: nothing read
    assert body._raw_stream.closed
    await opened.close()  # idempotent


async def test_a_whole_open_reads_the_version_it_describes(storage: S3Storage) -> None:
    """The headers and the body come from one response: a replacement put after open() is
    not what the read returns, and a later ranged read of it is refused (If-Match)."""
    data = bytes(range(256)) * 64
    await storage.put(clip_ref(), data)
    opened = await storage.open(clip_ref(), whole=True)
    await storage.put(clip_ref(), b"a replacement the headers would not describe")
    assert b"".join([c async for c in opened.read(0, len(data) - 1)]) == data
    with pytest.raises(StorageUnavailable, match="changed"):
        await anext(opened.read(0, 9))
    await opened.close()


async def test_a_whole_open_of_a_missing_key_is_not_found(storage: S3Storage) -> None:
    with pytest.raises(NotFound):
        await storage.open(clip_ref(), whole=True)


async def test_open_of_a_missing_key_is_not_found(storage: S3Storage) -> None:
    with pytest.raises(NotFound):
        await storage.open(clip_ref())


async def test_reads_come_in_chunks_of_at_most_chunk_size(storage: S3Storage) -> None:
    data = b"\1" * (2 * CHUNK_SIZE + 7)
    await storage.put(clip_ref(), data)
    chunks = await read_all(storage, clip_ref(), 0, len(data) - 1)
    assert all(len(c) <= CHUNK_SIZE for c in chunks)
    assert sum(map(len, chunks)) == len(data)


async def test_a_range_across_chunk_boundaries_is_exact_and_in_order(storage: S3Storage) -> None:
    """Read ahead several chunks deep (ReadAhead), the bytes still come exactly, in order."""
    data = bytes(range(251)) * (4 * CHUNK_SIZE // 251 + 1)  # a prime period: any shift shows
    await storage.put(clip_ref(), data)
    start, end = CHUNK_SIZE - 10, 3 * CHUNK_SIZE + 5
    chunks = await read_all(storage, clip_ref(), start, end)
    assert b"".join(chunks) == data[start : end + 1]
    assert [len(c) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 16]


async def test_early_close_closes_the_body(storage: S3Storage) -> None:
    # Longer than the read-ahead can hold, so the body is still open when the client leaves.
    size = (READ_AHEAD_CHUNKS + 3) * CHUNK_SIZE
    await storage.put(clip_ref(), b"\0" * size)
    spy = GetObjectSpy(storage)
    opened = await storage.open(clip_ref())
    stream = opened.read(0, size - 1)
    await anext(stream)
    [body] = spy.bodies
    assert not body._raw_stream.closed
    await stream.aclose()  # type: ignore[attr-defined]
    assert body._raw_stream.closed


class DiesAfterFirstRead:
    """A response body's connection that dies between its first read and its second.

    The break is placed on the stream itself: closed from the test instead, it would race the
    read-ahead thread (ReadAhead), which may already hold the next chunks.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.reads = 0

    def read(self, amt: int | None = None) -> bytes:
        self.reads += 1
        if self.reads == 2:
            self._raw.close()  # the connection dies under the stream
        return self._raw.read(amt)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


async def test_body_that_breaks_mid_stream_is_storage_unavailable(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"\0" * (3 * CHUNK_SIZE))
    dying: list[DiesAfterFirstRead] = []

    def break_the_body(parsed: dict[str, Any], **_: Any) -> None:
        dying.append(DiesAfterFirstRead(parsed["Body"]._raw_stream))
        parsed["Body"]._raw_stream = dying[-1]

    storage.client.meta.events.register("after-call.s3.GetObject", break_the_body)
    opened = await storage.open(clip_ref())
    stream = opened.read(0, 3 * CHUNK_SIZE - 1)
    assert len(await anext(stream)) == CHUNK_SIZE
    # Never a stream that ends short without an error: the chunk the connection died under.
    with pytest.raises(StorageUnavailable):
        await anext(stream)
    assert [d.reads for d in dying] == [2]


async def test_missing_key_is_not_found(storage: S3Storage) -> None:
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())
    with pytest.raises(NotFound):
        await read_all(storage, clip_ref(), 0, 10)
    with pytest.raises(NotFound):
        await delete(storage, clip_ref())


async def test_delete(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"x")
    await delete(storage, clip_ref())
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())


async def test_missing_bucket_is_storage_unavailable(s3_server: str) -> None:
    storage = S3Storage("no-such-bucket-here", "", s3_server)
    try:
        with pytest.raises(StorageUnavailable):
            await storage.check()
        with pytest.raises(StorageUnavailable):
            await storage.list_clips(CameraRef("cust1", "cam1"))
        with pytest.raises(StorageUnavailable):
            await walked(storage)
    finally:
        await storage.close()


async def test_check_passes_for_an_existing_bucket(storage: S3Storage) -> None:
    await storage.check()


async def test_unreachable_endpoint_is_storage_unavailable(aws_env: None, closed_port: int) -> None:
    storage = S3Storage("bucket", "", f"http://127.0.0.1:{closed_port}", max_attempts=1)
    try:
        with pytest.raises(StorageUnavailable):
            await storage.check()
        with pytest.raises(StorageUnavailable):
            await stat(storage, clip_ref())
        with pytest.raises(StorageUnavailable):
            await read_all(storage, clip_ref(), 0, 1)
        with pytest.raises(StorageUnavailable):
            await storage.list_cameras("cust1")
        with pytest.raises(StorageUnavailable):
            await walked(storage)
    finally:
        await storage.close()


async def test_lists_skip_what_is_not_a_clip_or_camera(
    storage: S3Storage, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    await storage.put(clip_ref("20261128T101500Z.mp4"), b"12345")
    await storage.put(clip_ref("20261128T101600Z-b.mkv"), b"1")
    await storage.put(clip_ref(camera="cam-2"), b"1")
    raw = boto3.client("s3", endpoint_url=endpoint)
    try:
        for key in (
            "cust1/cam1/notes.txt",
            "cust1/cam1/20261128T101700Z.mp4.bak",
            "cust1/cam1/nested/20261128T101800Z.mp4",
            "cust1/bad.name/20261128T101500Z.mp4",
            "cust1/loose-object",
            "bad.customer/cam1/20261128T101500Z.mp4",
            "root-object",
        ):
            raw.put_object(Bucket=bucket, Key=key, Body=b"x")
    finally:
        raw.close()
    assert await storage.list_clips(CameraRef("cust1", "cam1")) == [
        ListedClip("20261128T101500Z.mp4", 5),
        ListedClip("20261128T101600Z-b.mkv", 1),
    ]
    assert await storage.list_cameras("cust1") == ["cam-2", "cam1"]
    assert await walked(storage) == [  # the walk names them all, in key order
        "bad.customer/cam1/20261128T101500Z.mp4",
        "cust1/bad.name/20261128T101500Z.mp4",
        "cust1/cam-2/20261128T101500Z.mp4",
        "cust1/cam1/20261128T101500Z.mp4",
        "cust1/cam1/20261128T101600Z-b.mkv",
        "cust1/cam1/20261128T101700Z.mp4.bak",
        "cust1/cam1/nested/20261128T101800Z.mp4",
        "cust1/cam1/notes.txt",
        "cust1/loose-object",
        "root-object",
    ]
    assert await storage.list_clips(CameraRef("nobody", "cam1")) == []
    assert await storage.list_cameras("nobody") == []


async def test_list_follows_continuation_tokens(
    storage: S3Storage, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    raw = boto3.client("s3", endpoint_url=endpoint)
    try:
        for minute in range(12):
            key = f"cust1/cam1/20261128T10{minute:02d}00Z.mp4"
            raw.put_object(Bucket=bucket, Key=key, Body=b"")
    finally:
        raw.close()
    pages: list[int] = []

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = 5  # so twelve keys take three pages
        pages.append(1)

    storage.client.meta.events.register("before-parameter-build.s3.ListObjectsV2", small_pages)
    assert len(await storage.list_clips(CameraRef("cust1", "cam1"))) == 12
    assert len(pages) == 3
    pages.clear()
    assert len(await walked(storage)) == 12
    assert len(pages) == 3


async def test_prefix_places_keys_under_it(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    storage = S3Storage(bucket, "/site-a/footage/", endpoint)
    try:
        await storage.put(clip_ref(), b"abc")
        storage.client.put_object(Bucket=bucket, Key=f"site-b/cust1/cam1/{CLIP_ID}", Body=b"")
        assert await walked(storage) == [f"cust1/cam1/{CLIP_ID}"]  # under the prefix only
        assert await storage.list_cameras("cust1") == ["cam1"]
        assert [c.clip_id for c in await storage.list_clips(CameraRef("cust1", "cam1"))] == [
            CLIP_ID
        ]
        head = storage.client.head_object(Bucket=bucket, Key=f"site-a/footage/cust1/cam1/{CLIP_ID}")
        assert head["ContentLength"] == 3
    finally:
        await storage.close()


async def test_the_s3_store_is_its_own_presigner(storage: S3Storage) -> None:
    assert presigner_of(storage) is storage


async def test_presign_caps_the_lifetime_and_serves_the_object(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"0123456789")
    url = await storage.presign(clip_ref(), None, None, ttl=3600)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["60"]
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"0123456789"
    assert response.headers["cache-control"] == "private, no-store"


async def test_presigned_range_is_a_signed_header(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"0123456789")
    url = await storage.presign(clip_ref(), 2, 5, ttl=30)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["30"]
    assert "range" in query["X-Amz-SignedHeaders"][0].split(";")
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.content == b"2345"


async def test_open_storage_picks_the_s3_backend(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    settings = load_settings(
        {"FOOTGW_STORAGE": f"s3://{bucket}/some/prefix", "FOOTGW_S3_ENDPOINT_URL": endpoint}
    )
    storage = open_storage(settings)
    try:
        assert isinstance(storage, S3Storage)
        assert (storage.bucket, storage.prefix) == (bucket, "some/prefix")
        await storage.check()
    finally:
        await storage.close()


# Deletion that really deletes (docs/contract.md §4): on a versioned bucket DeleteObject alone
# adds a delete marker and keeps the footage; every version goes, or a lock refuses it all.

KEY = f"cust1/cam1/{CLIP_ID}"


@pytest.fixture
def s3(s3_server: str) -> Iterator[Any]:
    client = boto3.client("s3", endpoint_url=s3_server)
    yield client
    client.close()


def versioned_bucket(s3: Any, *, locked: bool = False) -> str:
    bucket = f"versioned-{uuid.uuid4().hex[:12]}"
    if locked:  # object lock turns versioning on with it
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def versions_of(s3: Any, bucket: str, key: str = KEY) -> set[str]:
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    found = listed.get("Versions", []) + listed.get("DeleteMarkers", [])
    return {item["VersionId"] for item in found if item["Key"] == key}


@pytest.fixture
async def versioned(s3_server: str, s3: Any) -> AsyncIterator[tuple[S3Storage, str]]:
    bucket = versioned_bucket(s3)
    store = S3Storage(bucket, "", s3_server)
    yield store, bucket
    await store.close()


async def test_a_versioned_delete_removes_every_version_and_nothing_else(
    versioned: tuple[S3Storage, str], s3: Any
) -> None:
    storage, bucket = versioned
    first = s3.put_object(Bucket=bucket, Key=KEY, Body=b"first take")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key=KEY, Body=b"second take")["VersionId"]
    s3.put_object(Bucket=bucket, Key=KEY + ".bak", Body=b"shares the prefix")
    planned = await storage.plan_deletion(clip_ref())
    assert [v.version_id for v in planned.versions] == [first, second]  # oldest first
    await storage.delete(planned)
    assert versions_of(s3, bucket) == set()  # no delete marker, no older version: nothing
    assert versions_of(s3, bucket, KEY + ".bak") != set()
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())
    with pytest.raises(NotFound):
        await storage.plan_deletion(clip_ref())


async def test_versions_hidden_behind_a_delete_marker_are_removed_too(
    versioned: tuple[S3Storage, str], s3: Any
) -> None:
    storage, bucket = versioned
    kept = s3.put_object(Bucket=bucket, Key=KEY, Body=b"footage")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key=KEY)["VersionId"]  # a plain DeleteObject
    assert versions_of(s3, bucket) == {kept, marker}  # the footage is still there
    planned = await storage.plan_deletion(clip_ref())
    assert [(v.version_id, v.delete_marker) for v in planned.versions] == [
        (kept, False),
        (marker, True),
    ]
    await storage.delete(planned)
    assert versions_of(s3, bucket) == set()


async def test_only_delete_markers_left_is_not_found(
    versioned: tuple[S3Storage, str], s3: Any
) -> None:
    storage, bucket = versioned
    s3.delete_object(Bucket=bucket, Key=KEY)
    with pytest.raises(NotFound):
        await storage.plan_deletion(clip_ref())


async def test_an_unversioned_bucket_deletes_its_one_null_version(storage: S3Storage) -> None:
    await storage.put(clip_ref(), b"x")
    planned = await storage.plan_deletion(clip_ref())
    assert [v.version_id for v in planned.versions] == [None]
    await storage.delete(planned)
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())


@pytest.mark.parametrize("lock", ["legal hold", "governance retention", "compliance retention"])
async def test_a_locked_version_refuses_the_whole_deletion_before_anything_goes(
    s3_server: str, s3: Any, lock: str
) -> None:
    bucket = versioned_bucket(s3, locked=True)
    old = s3.put_object(Bucket=bucket, Key=KEY, Body=b"old")["VersionId"]
    extra: dict[str, Any] = {}
    if lock == "legal hold":
        extra["ObjectLockLegalHoldStatus"] = "ON"
    else:
        extra["ObjectLockMode"] = lock.split()[0].upper()
        extra["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=1)
    held = s3.put_object(Bucket=bucket, Key=KEY, Body=b"held", **extra)["VersionId"]
    storage = S3Storage(bucket, "", s3_server)
    try:
        with pytest.raises(DeletionBlocked) as refused:
            await storage.plan_deletion(clip_ref())
        assert refused.value.blocked == (held,) and refused.value.removed == ()
        assert versions_of(s3, bucket) == {old, held}  # nothing was removed
    finally:
        await storage.close()


async def test_a_hold_placed_after_the_plan_stops_the_deletion_and_says_what_went(
    s3_server: str, s3: Any
) -> None:
    bucket = versioned_bucket(s3, locked=True)
    old = s3.put_object(Bucket=bucket, Key=KEY, Body=b"old")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key=KEY, Body=b"new")["VersionId"]
    storage = S3Storage(bucket, "", s3_server)
    try:
        planned = await storage.plan_deletion(clip_ref())
        s3.put_object_legal_hold(Bucket=bucket, Key=KEY, VersionId=new, LegalHold={"Status": "ON"})
        with pytest.raises(DeletionBlocked) as refused:
            await storage.delete(planned)
        assert refused.value.blocked == (new,) and refused.value.removed == (old,)
        assert versions_of(s3, bucket) == {new}
    finally:
        await storage.close()
