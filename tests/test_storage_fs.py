"""FileStorage against a real temporary directory."""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import NotFound, StorageUnavailable
from gateway.storage import beneath, fs, open_storage, presigner_of
from gateway.storage.base import CHUNK_SIZE, ListedClip, ObjectInfo, ObjectKind, StoredObject
from gateway.storage.fs import FILE_CHUNK_SIZE, FileStorage
from gateway.types import CameraRef, ClipRef, clip_recorded_at
from tests.support.skips import skip_unsupported

pytestmark = pytest.mark.anyio

CLIP_ID = "20261128T101500Z.mp4"


def clip_ref(clip_id: str = CLIP_ID, customer: str = "cust1", camera: str = "cam1") -> ClipRef:
    recorded = clip_recorded_at(clip_id) or datetime(2026, 11, 28, tzinfo=UTC)
    return ClipRef(customer, camera, clip_id, recorded)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "footage"


@pytest.fixture(params=["openat2-cached", "openat2", "per-component"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every way the store resolves a path: on the event loop from the kernel's caches
    (openat2 with RESOLVE_CACHED too), openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH) in a worker
    thread, and one O_NOFOLLOW openat per component where the kernel lacks openat2."""
    if request.param.startswith("openat2"):
        if not beneath.HAS_OPENAT2:
            skip_unsupported("this kernel has no openat2")
        monkeypatch.setattr(beneath, "_OPEN", beneath.openat2)
    else:
        monkeypatch.setattr(beneath, "_OPEN", beneath.open_per_component)
    if request.param != "openat2-cached":
        monkeypatch.setattr(beneath, "_OPEN_CACHED", None)
    return str(request.param)


@pytest.fixture
def storage(root: Path, mechanism: str) -> FileStorage:
    return FileStorage(root)


async def delete(storage: FileStorage, clip: ClipRef) -> None:
    """Delete as the owner's route and retention do: plan every version, then remove them."""
    await storage.delete(await storage.plan_deletion(clip))


async def stat(storage: FileStorage, clip: ClipRef) -> ObjectInfo:
    """What open() tells of a clip (the request path's one way to ask), its fd closed again."""
    opened = await storage.open(clip)
    await opened.close()
    return opened.info


async def read_all(storage: FileStorage, clip: ClipRef, start: int, end: int) -> list[bytes]:
    opened = await storage.open(clip)
    try:
        return [chunk async for chunk in opened.read(start, end)]
    finally:
        await opened.close()


async def walked(storage: FileStorage) -> list[StoredObject]:
    return [found async for found in storage.walk()]


def open_paths() -> list[str]:
    """What this process's fds point at (Linux)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd listdir itself used is gone by now
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
    return paths


async def test_construction_creates_the_root(root: Path, storage: FileStorage) -> None:
    assert root.is_dir()
    await storage.check()


async def test_put_stat_read(storage: FileStorage, root: Path) -> None:
    data = bytes(range(256)) * 40
    await storage.put(clip_ref(), data)
    assert (root / "cust1" / "cam1" / CLIP_ID).read_bytes() == data
    info = await stat(storage, clip_ref())
    assert info.size == len(data)
    assert info.etag.startswith('"') and info.etag.endswith('"') and len(info.etag) > 2
    assert info.last_modified.tzinfo is not None
    assert b"".join(await read_all(storage, clip_ref(), 0, len(data) - 1)) == data
    assert b"".join(await read_all(storage, clip_ref(), 100, 199)) == data[100:200]
    assert await read_all(storage, clip_ref(), 5, 5) == [data[5:6]]


async def test_put_is_atomic_and_leaves_no_temp_files(storage: FileStorage, root: Path) -> None:
    await storage.put(clip_ref(), b"old")
    before = (await stat(storage, clip_ref())).etag
    await storage.put(clip_ref(), b"new bytes")
    assert os.listdir(root / "cust1" / "cam1") == [CLIP_ID]
    after = await stat(storage, clip_ref())
    assert after.size == 9
    assert after.etag != before  # a replaced file is a new inode


async def test_reads_come_in_chunks_of_at_most_chunk_size(storage: FileStorage) -> None:
    data = os.urandom(2 * FILE_CHUNK_SIZE + 123)
    await storage.put(clip_ref(), data)
    chunks = await read_all(storage, clip_ref(), 10, len(data) - 1)
    assert [len(c) for c in chunks] == [FILE_CHUNK_SIZE, FILE_CHUNK_SIZE, 113]
    assert FILE_CHUNK_SIZE <= CHUNK_SIZE  # the Storage protocol's ceiling
    assert b"".join(chunks) == data[10:]


async def assert_no_clip(storage: FileStorage) -> None:
    """No clip at clip_ref(): opening, reading and deleting each say NotFound."""
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())
    with pytest.raises(NotFound):
        await read_all(storage, clip_ref(), 0, 0)
    with pytest.raises(NotFound):
        await delete(storage, clip_ref())


async def test_a_hot_clip_opens_on_the_event_loop_and_a_cold_one_in_a_thread(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RESOLVE_CACHED: a path the kernel's caches hold opens on the spot (no worker thread);
    one it would have to read the disk for is opened in a thread, with the same answer."""
    if not beneath.HAS_OPENAT2:
        skip_unsupported("this kernel has no openat2")
    storage = FileStorage(root)
    await storage.put(clip_ref(), b"footage")
    threads: list[str] = []
    in_thread = fs._in_thread

    async def counted(what: str, func: Callable[[], fs.T]) -> fs.T:
        threads.append(what)
        return await in_thread(what, func)

    monkeypatch.setattr(fs, "_in_thread", counted)
    clip = await storage.open(clip_ref())  # just written: every name on its path is cached
    await clip.close()
    assert threads == []

    def would_wait(_dir_fd: int, path: str, _flags: int) -> int:
        raise BlockingIOError(errno.EAGAIN, "not cached", path)

    monkeypatch.setattr(beneath, "_OPEN_CACHED", would_wait)
    clip = await storage.open(clip_ref())
    assert b"".join([c async for c in clip.read(0, 6)]) == b"footage"
    await clip.close()
    assert threads == ["clip"]


async def test_missing_clip_is_not_found(storage: FileStorage) -> None:
    await assert_no_clip(storage)


async def test_delete(storage: FileStorage) -> None:
    await storage.put(clip_ref(), b"x")
    await delete(storage, clip_ref())
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())


async def test_a_directory_is_not_a_clip(storage: FileStorage, root: Path) -> None:
    (root / "cust1" / "cam1" / CLIP_ID).mkdir(parents=True)
    # A deletion plans on what it finds there, as a read does: no regular file, no clip.
    await assert_no_clip(storage)
    assert (root / "cust1" / "cam1" / CLIP_ID).is_dir()


async def test_closing_mid_stream_closes_the_fd(storage: FileStorage, root: Path) -> None:
    await storage.put(clip_ref(), b"\0" * (3 * FILE_CHUNK_SIZE))
    path = str(root / "cust1" / "cam1" / CLIP_ID)
    opened = await storage.open(clip_ref())
    stream = opened.read(0, 3 * FILE_CHUNK_SIZE - 1)
    assert len(await anext(stream)) == FILE_CHUNK_SIZE
    assert open_paths().count(path) == 1
    await stream.aclose()  # type: ignore[attr-defined]
    await opened.close()
    assert path not in open_paths()


async def test_file_that_shrinks_mid_read_is_storage_unavailable(
    storage: FileStorage, root: Path
) -> None:
    await storage.put(clip_ref(), b"\0" * (2 * FILE_CHUNK_SIZE))
    opened = await storage.open(clip_ref())
    stream = opened.read(0, 2 * FILE_CHUNK_SIZE - 1)
    await anext(stream)
    os.truncate(root / "cust1" / "cam1" / CLIP_ID, FILE_CHUNK_SIZE)
    with pytest.raises(StorageUnavailable):
        await anext(stream)
    await opened.close()


async def test_symlink_out_of_the_root_is_refused(
    storage: FileStorage, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not footage")
    camera_dir = root / "cust1" / "cam1"
    camera_dir.mkdir(parents=True)
    (camera_dir / CLIP_ID).symlink_to(secret)
    await assert_no_clip(storage)
    assert secret.exists()
    assert await storage.list_clips(CameraRef("cust1", "cam1")) == []


async def test_symlinked_directory_out_of_the_root_is_refused(
    storage: FileStorage, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / CLIP_ID).write_bytes(b"not footage")
    (root / "cust1").mkdir()
    (root / "cust1" / "cam1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())
    with pytest.raises(NotFound):
        await storage.list_clips(CameraRef("cust1", "cam1"))
    with pytest.raises(NotFound):
        await storage.put(clip_ref(), b"x")
    assert (outside / CLIP_ID).read_bytes() == b"not footage"


async def test_symlink_loop_is_not_found(storage: FileStorage, root: Path) -> None:
    camera_dir = root / "cust1" / "cam1"
    camera_dir.mkdir(parents=True)
    (camera_dir / CLIP_ID).symlink_to(camera_dir / CLIP_ID)
    with pytest.raises(NotFound):
        await stat(storage, clip_ref())
    with pytest.raises(NotFound):
        await read_all(storage, clip_ref(), 0, 0)


async def test_invalid_ids_never_touch_the_disk(storage: FileStorage, root: Path) -> None:
    (root / "secret.mp4").write_bytes(b"x")
    for clip in (
        clip_ref(customer=".."),
        clip_ref(camera=".."),
        ClipRef("cust1", "cam1", "../../secret.mp4", datetime(2026, 1, 1, tzinfo=UTC)),
    ):
        with pytest.raises(NotFound):
            await stat(storage, clip)
    assert await storage.list_clips(CameraRef("..", "..")) == []
    assert await storage.list_cameras("..") == []


async def test_list_clips_skips_what_is_not_a_clip(storage: FileStorage, root: Path) -> None:
    await storage.put(clip_ref("20261128T101500Z.mp4"), b"12345")
    await storage.put(clip_ref("20261128T101600Z-b.mkv"), b"1")
    camera_dir = root / "cust1" / "cam1"
    (camera_dir / "notes.txt").write_bytes(b"x")
    (camera_dir / ".put-leftover").write_bytes(b"x")
    (camera_dir / "20261128T101700Z.mp4.bak").write_bytes(b"x")
    (camera_dir / "20261128T101800Z.mp4").mkdir()
    (camera_dir / "20261128T101900Z.mp4").symlink_to(camera_dir / "20261128T101500Z.mp4")
    clips = await storage.list_clips(CameraRef("cust1", "cam1"))
    assert clips == [
        ListedClip("20261128T101500Z.mp4", 5),
        ListedClip("20261128T101600Z-b.mkv", 1),
    ]


async def test_list_of_an_unknown_camera_is_empty(storage: FileStorage) -> None:
    assert await storage.list_clips(CameraRef("nobody", "nothing")) == []
    assert await storage.list_cameras("nobody") == []


async def test_list_cameras_skips_what_is_not_a_camera(storage: FileStorage, root: Path) -> None:
    await storage.put(clip_ref(camera="cam1"), b"x")
    await storage.put(clip_ref(camera="cam-2"), b"x")
    (root / "cust1" / "bad.name").mkdir()
    (root / "cust1" / "a-file").write_bytes(b"x")
    assert await storage.list_cameras("cust1") == ["cam-2", "cam1"]


async def test_check_fails_when_the_root_is_gone(storage: FileStorage, root: Path) -> None:
    root.rmdir()
    with pytest.raises(StorageUnavailable):
        await storage.check()


async def test_root_that_cannot_be_created_is_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StorageUnavailable):
        FileStorage(tmp_path / "file" / "footage")


async def test_the_file_store_is_no_presigner(storage: FileStorage) -> None:
    assert not hasattr(storage, "presign")
    assert presigner_of(storage) is None


async def test_open_storage_picks_the_file_backend(tmp_path: Path) -> None:
    from gateway.settings import load_settings

    settings = load_settings({"FOOTGW_STORAGE": f"file://{tmp_path / 'f'}"})
    storage = open_storage(settings)
    assert isinstance(storage, FileStorage)
    assert storage.root == (tmp_path / "f").resolve()
    await storage.close()


async def test_open_storage_reads_a_relative_file_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.settings import load_settings

    monkeypatch.chdir(tmp_path)
    storage = open_storage(load_settings({"FOOTGW_DATA_DIR": "./var"}))
    assert isinstance(storage, FileStorage)
    assert storage.root == (tmp_path / "var" / "footage").resolve()


async def test_walk_names_every_object_and_follows_no_symlink(
    storage: FileStorage, root: Path, tmp_path: Path
) -> None:
    await storage.put(clip_ref(customer="cust1"), b"x")
    await storage.put(clip_ref(customer="cust_2", camera="cam-9"), b"x")
    (root / "bad.name" / "cam1").mkdir(parents=True)
    (root / "bad.name" / "cam1" / CLIP_ID).write_bytes(b"x")
    (root / "loose-file").write_bytes(b"x")
    (root / "empty-dir").mkdir()  # no object in it: nothing to name
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / CLIP_ID).write_bytes(b"not footage")
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "cust1" / "cam1" / "deeper").mkdir()
    (root / "cust1" / "cam1" / "deeper" / CLIP_ID).write_bytes(b"x")
    (root / "cust1" / "cam1" / "20261128T101600Z.mp4").symlink_to(root / "loose-file")
    os.mkfifo(root / "cust1" / "cam1" / "20261128T101700Z.mp4")
    assert await walked(storage) == [
        StoredObject(f"bad.name/cam1/{CLIP_ID}", ObjectKind.FILE),
        StoredObject(f"cust1/cam1/{CLIP_ID}", ObjectKind.FILE),
        StoredObject("cust1/cam1/20261128T101600Z.mp4", ObjectKind.SYMLINK),
        StoredObject("cust1/cam1/20261128T101700Z.mp4", ObjectKind.OTHER),
        StoredObject(f"cust1/cam1/deeper/{CLIP_ID}", ObjectKind.FILE),
        StoredObject(f"cust_2/cam-9/{CLIP_ID}", ObjectKind.FILE),
        StoredObject("linked", ObjectKind.SYMLINK),
        StoredObject("loose-file", ObjectKind.FILE),
    ]


async def test_walk_of_an_unreadable_directory_is_storage_unavailable(
    storage: FileStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EACCES from the OS itself (a chmod 0 directory does not stop root, who runs CI here).
    await storage.put(clip_ref(), b"x")
    scandir = os.scandir
    refused = str(root / "cust1")

    def refusing(path: Path) -> object:
        if str(path) == refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), refused)
        return scandir(path)

    monkeypatch.setattr(fs.os, "scandir", refusing)
    with pytest.raises(StorageUnavailable):  # never a walk that quietly skips what it missed
        await walked(storage)


# Chunks after the first come straight from the page cache when it holds them (preadv2 with
# RWF_NOWAIT on the event loop: docs/benchmarks.md), else from a worker thread. Both give the
# same bytes.


def _preadv_failing(errno_value: int, calls: list[int]) -> object:
    def preadv(fd: int, buffers: list[bytearray], offset: int, flags: int = 0) -> int:
        calls.append(flags)
        raise OSError(errno_value, os.strerror(errno_value))

    return preadv


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="RWF_NOWAIT is Linux-only")
async def test_cached_chunks_are_read_without_a_thread_and_are_the_same_bytes(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * FILE_CHUNK_SIZE + 7)
    await storage.put(clip_ref(), data)
    threaded: list[int] = []
    pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: threaded.append(at) or pread(fd, n, at))
    chunks = await read_all(storage, clip_ref(), 5, len(data) - 1)
    assert b"".join(chunks) == data[5:]
    assert threaded == []  # the first chunk too: the open was the only thread hop


@pytest.mark.parametrize("errno_value", [errno.EAGAIN, errno.EOPNOTSUPP])
@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="RWF_NOWAIT is Linux-only")
async def test_uncached_or_unsupported_reads_fall_back_to_a_thread(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch, errno_value: int
) -> None:
    data = os.urandom(3 * FILE_CHUNK_SIZE + 7)
    await storage.put(clip_ref(), data)
    calls: list[int] = []
    monkeypatch.setattr(os, "preadv", _preadv_failing(errno_value, calls))
    chunks = await read_all(storage, clip_ref(), 0, len(data) - 1)
    assert b"".join(chunks) == data
    # EAGAIN (not cached) is asked again for each chunk; EOPNOTSUPP once for the whole stream.
    assert len(calls) == (4 if errno_value == errno.EAGAIN else 1)


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="RWF_NOWAIT is Linux-only")
async def test_a_failing_cached_read_is_storage_unavailable_and_closes_the_fd(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storage.put(clip_ref(), os.urandom(2 * FILE_CHUNK_SIZE))
    monkeypatch.setattr(os, "preadv", _preadv_failing(errno.EIO, []))
    before = open_paths()
    with pytest.raises(StorageUnavailable):
        await read_all(storage, clip_ref(), 0, 2 * FILE_CHUNK_SIZE - 1)
    assert open_paths() == before


# open(): one worker-thread call for what a response needs before its headers
# (docs/benchmarks.md); the reads that follow are bound to the very file that was opened.


async def test_open_gives_the_info_and_reads_of_that_file(storage: FileStorage, root: Path) -> None:
    data = os.urandom(2 * FILE_CHUNK_SIZE + 9)
    await storage.put(clip_ref(), data)
    path = str(root / "cust1" / "cam1" / CLIP_ID)
    opened = await storage.open(clip_ref())
    assert opened.info == await stat(storage, clip_ref())
    os.replace(path, path + ".old")  # a recorder replaces the clip: the open one is unchanged
    await storage.put(clip_ref(), b"new")
    assert b"".join([c async for c in opened.read(0, len(data) - 1)]) == data
    assert b"".join([c async for c in opened.read(7, 7)]) == data[7:8]
    await opened.close()
    await opened.close()  # idempotent
    assert path + ".old" not in open_paths()
    with pytest.raises(StorageUnavailable):  # never a pread on an fd number reused since
        await anext(opened.read(0, 0))


async def test_an_opened_clip_dropped_unclosed_still_closes_its_fd(
    storage: FileStorage, root: Path
) -> None:
    await storage.put(clip_ref(), b"abc")
    opened = await storage.open(clip_ref())
    path = str(root / "cust1" / "cam1" / CLIP_ID)
    assert open_paths().count(path) == 1
    del opened
    gc.collect()
    assert path not in open_paths()


async def test_open_refuses_what_stat_refuses(
    storage: FileStorage, root: Path, tmp_path: Path
) -> None:
    camera_dir = root / "cust1" / "cam1"
    camera_dir.mkdir(parents=True)
    (tmp_path / "secret.mp4").write_bytes(b"not footage")
    (camera_dir / CLIP_ID).symlink_to(tmp_path / "secret.mp4")
    (camera_dir / "20261128T101600Z.mp4").mkdir()
    os.mkfifo(camera_dir / "20261128T101700Z.mp4")  # O_NONBLOCK: opening it never hangs
    with socket.socket(socket.AF_UNIX) as sock:  # open(2) says ENXIO: not a clip either
        sock.bind(str(camera_dir / "20261128T101800Z.mp4"))
        before = open_paths()
        for clip_id in (CLIP_ID, *(f"20261128T10{m}00Z.mp4" for m in (16, 17, 18, 19))):
            with pytest.raises(NotFound):
                await storage.open(clip_ref(clip_id))
        assert open_paths() == before


# Symlinks in the tree are refused at every level, wherever they point: out of the root, or
# into another customer's tree (docs/security.md §3). Read, list and delete resolve one way.

VICTIM = b"ANOTHER-CUSTOMERS-FOOTAGE"
LEVELS = ["customer", "camera", "clip"]


def plant(root: Path, tmp_path: Path, level: str, target: str) -> Path:
    """A victim's clip, and a symlink at `level` of cust1's tree that leads to it; the victim is
    cust2 inside the root, or a tree outside it. Returns the victim's clip file."""
    victim_customer = root / "cust2" if target == "inside" else tmp_path / "outside"
    victim = victim_customer / "cam1" / CLIP_ID
    victim.parent.mkdir(parents=True)
    victim.write_bytes(VICTIM)
    root.mkdir(exist_ok=True)
    if level == "customer":
        (root / "cust1").symlink_to(victim_customer, target_is_directory=True)
    elif level == "camera":
        (root / "cust1").mkdir()
        (root / "cust1" / "cam1").symlink_to(victim.parent, target_is_directory=True)
    else:
        (root / "cust1" / "cam1").mkdir(parents=True)
        (root / "cust1" / "cam1" / CLIP_ID).symlink_to(victim)
    return victim


@pytest.mark.parametrize("target", ["inside", "outside"])
@pytest.mark.parametrize("level", LEVELS)
async def test_a_symlink_at_any_level_is_refused_for_read_list_and_delete(
    storage: FileStorage, root: Path, tmp_path: Path, level: str, target: str
) -> None:
    victim = plant(root, tmp_path, level, target)
    before = open_paths()
    await assert_no_clip(storage)
    try:
        assert await storage.list_clips(CameraRef("cust1", "cam1")) == []
    except NotFound:
        assert level != "clip"  # a symlinked directory on the way is refused outright
    try:  # only a real camera directory is a camera (at the clip level, cam1 is one)
        assert await storage.list_cameras("cust1") == (["cam1"] if level == "clip" else [])
    except NotFound:
        assert level == "customer"
    assert victim.read_bytes() == VICTIM
    assert open_paths() == before
    if target == "inside":  # the victim's own footage still serves its owner
        assert (
            b"".join(await read_all(storage, clip_ref(customer="cust2"), 0, len(VICTIM) - 1))
            == VICTIM
        )


async def test_a_camera_swapped_for_a_symlink_between_plan_and_delete_deletes_nothing_else(
    storage: FileStorage, root: Path
) -> None:
    # Check, then use: the plan found cust1's own clip; by the time of the unlink its camera
    # directory is a symlink into cust2's tree. The unlink must not follow it.
    await storage.put(clip_ref(), b"own footage")
    await storage.put(clip_ref(customer="cust2"), VICTIM)
    planned = await storage.plan_deletion(clip_ref())
    (root / "cust1" / "cam1").rename(root / "cust1" / "moved")
    (root / "cust1" / "cam1").symlink_to(root / "cust2" / "cam1", target_is_directory=True)
    with pytest.raises(NotFound):
        await storage.delete(planned)
    assert (root / "cust2" / "cam1" / CLIP_ID).read_bytes() == VICTIM


async def test_a_directory_swapped_for_a_symlink_just_before_the_open_is_refused(
    storage: FileStorage, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race a check of the path made before opening cannot close: the camera directory is
    # replaced by a symlink at the worst moment, just before the path is resolved. The
    # resolution itself refuses the symlink.
    await storage.put(clip_ref(), b"footage")
    await storage.put(clip_ref(customer="cust2"), VICTIM)
    camera_dir = root / "cust1" / "cam1"

    def swapping(resolve: Callable[[int, str, int], int]) -> Callable[[int, str, int], int]:
        def swap_then_open(dir_fd: int, path: str, flags: int) -> int:
            if path.endswith(CLIP_ID) and not camera_dir.is_symlink():
                camera_dir.rename(root / "cust1" / "moved")
                camera_dir.symlink_to(root / "cust2" / "cam1", target_is_directory=True)
            return resolve(dir_fd, path, flags)

        return swap_then_open

    monkeypatch.setattr(beneath, "_OPEN", swapping(beneath._OPEN))
    if beneath._OPEN_CACHED is not None:  # on the event loop, from the kernel's caches
        monkeypatch.setattr(beneath, "_OPEN_CACHED", swapping(beneath._OPEN_CACHED))
    before = open_paths()
    with pytest.raises(NotFound):
        await storage.open(clip_ref())
    with pytest.raises(NotFound):
        await delete(storage, clip_ref())
    assert open_paths() == before
    assert (root / "cust2" / "cam1" / CLIP_ID).read_bytes() == VICTIM


async def test_a_directory_swapped_mid_walk_still_yields_only_what_was_walked(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One openat per component: each step opens from the fd the last one holds, so a swap
    # between two steps changes nothing: the clip comes from the directory already opened.
    monkeypatch.setattr(beneath, "_OPEN", beneath.open_per_component)
    storage = FileStorage(root)
    await storage.put(clip_ref(), b"footage")
    await storage.put(clip_ref(customer="cust2"), VICTIM)
    camera_dir = root / "cust1" / "cam1"
    real_open = os.open

    def swap_at_the_clip(path: str, flags: int, *args: int, **kwargs: int) -> int:
        if path == CLIP_ID and not camera_dir.is_symlink():
            camera_dir.rename(root / "cust1" / "moved")
            camera_dir.symlink_to(root / "cust2" / "cam1", target_is_directory=True)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(beneath.os, "open", swap_at_the_clip)
    assert b"".join(await read_all(storage, clip_ref(), 0, 6)) == b"footage"


def test_per_component_refuses_dot_segments_as_openat2_does(root: Path) -> None:
    root.mkdir()
    fd = os.open(root, beneath.DIR_FLAGS)
    try:
        for path in ("..", "a/../b", "./x", "a//b"):
            with pytest.raises(OSError) as caught:
                beneath.open_per_component(fd, path, os.O_RDONLY)
            assert caught.value.errno == errno.EXDEV, path
    finally:
        os.close(fd)
