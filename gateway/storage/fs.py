"""Footage in a local directory tree: ROOT/customer/camera/clip.

Every blocking call runs in a worker thread (anyio.to_thread) so one slow disk never stalls the
event loop; only reads the page cache can answer at once run on the loop (_read_cached). Every
OSError is translated here: ENOENT/ENOTDIR -> NotFound, anything else -> StorageUnavailable;
nothing else leaves this module.

Containment: every path under the root is opened one way, by gateway.storage.beneath's
open_beneath() from an fd on the root, and no symlink on the way is ever followed: not one out
of the tree, not one into another customer's (docs/security.md §3). A read opens the clip's
file, a listing its directory, a deletion unlinks through the fd of the directory it opened; a
directory or file swapped for a symlink at any moment is refused, never followed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

import anyio
import anyio.to_thread

from gateway.errors import NotFound, StorageUnavailable
from gateway.storage.base import (
    CHUNK_SIZE,
    Deletion,
    ListedClip,
    ObjectInfo,
    ObjectKind,
    StoredObject,
    StoredVersion,
)
from gateway.storage.beneath import (
    AT_FDCWD,
    DIR_FLAGS,
    RESOLVE_CACHED,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    open_beneath,
    open_cached,
    openat2,
)
from gateway.types import CameraRef, ClipRef, clip_recorded_at, is_valid_id

T = TypeVar("T")

# Half the storage-wide ceiling: read from the page cache on the spot (_read_cached) there is no
# thread hop left to amortise, and 512 KiB streamed as fast as 1 MiB with less memory held
# per stream (docs/benchmarks.md).
FILE_CHUNK_SIZE = CHUNK_SIZE // 2
# ELOOP: a symlink (or a loop) on the way; EXDEV: a path that would leave the root; ENXIO: a
# socket (or a device without a driver) sits there. None is a clip: each is refused as absent.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV, errno.ENXIO})
# O_NOFOLLOW: the final component must not be a symlink either.
# O_NONBLOCK: opening a FIFO planted in the tree must not hang a worker thread.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
# still_serves' look at a path: an O_PATH descriptor (nothing opened for reading), from the
# root's absolute real path, no symlink followed anywhere (the root has none: FileStorage
# resolved it), and only if the kernel's caches can answer.
_PROBE_FLAGS = os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW
_PROBE_RESOLVE = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED
# A seeded clip's temp file: created new, never through a symlink already sitting at its name.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn OSError into our errors at the module boundary."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _MISSING:
            raise NotFound(f"No such {what}.") from exc
        raise StorageUnavailable(f"The footage store failed: {exc.strerror or exc}.") from exc


async def _in_thread(what: str, func: Callable[[], T]) -> T:
    """Run a blocking call in a worker thread, translating its OSErrors."""
    with _translated(what):
        return await anyio.to_thread.run_sync(func)


def etag_for(st: os.stat_result) -> str:
    """A quoted strong ETag that changes whenever the file is replaced or rewritten."""
    # os.replace gives a new inode; an in-place rewrite changes size or mtime_ns.
    token = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
    return '"' + hashlib.blake2b(token, digest_size=8).hexdigest() + '"'


class FileStorage:
    """Storage, Seeder and Inventory over a directory (gateway.storage.base); no Presigner."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.root = Path(os.path.realpath(root, strict=True))
        except OSError as exc:
            raise StorageUnavailable(f"Cannot use {root} as the footage directory: {exc}.") from exc
        self._root_text = str(self.root)

    # -- paths -------------------------------------------------------------------------------

    def _open(self, parts: Sequence[str], flags: int) -> int:
        """An fd on ROOT/parts… opened by open_beneath (no symlink followed); the one way in."""
        root = os.open(self._root_text, DIR_FLAGS)
        if not parts:
            return root
        try:
            return open_beneath(root, parts, flags)
        finally:
            os.close(root)

    def _check_ids(self, clip: ClipRef) -> None:
        """NotFound unless every part of the clip's name is a valid id (no "..", no "/")."""
        if not clip.has_valid_ids():
            raise NotFound("No such clip.")

    def _parts(self, clip: ClipRef) -> tuple[str, str, str]:
        """The names open_beneath walks to the clip from the root; NotFound unless valid ids."""
        self._check_ids(clip)
        return clip.customer_id, clip.camera_id, clip.clip_id

    def _open_clip(self, clip: ClipRef) -> tuple[int, ObjectInfo]:
        """An fd on the clip's regular file inside the root, and what fstat says of it.

        Blocking: everything a response needs from the disk before its headers, in one
        worker-thread call.
        """
        return self._checked(self._open(self._parts(clip), _OPEN_FLAGS))

    def _open_clip_cached(self, clip: ClipRef) -> tuple[int, ObjectInfo] | None:
        """_open_clip if the kernel's caches alone can answer (no disk wait), else None."""
        with _translated("clip"):
            fd = open_cached(self._root_text, self._parts(clip), _OPEN_FLAGS)
            return None if fd is None else self._checked(fd)

    @staticmethod
    def _checked(fd: int) -> tuple[int, ObjectInfo]:
        """fd and its ObjectInfo if it is a regular file; else closed, and NotFound."""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                # A directory or a FIFO: say "not found" rather than reveal what is there.
                raise NotFound("No such clip.")
        except BaseException:
            os.close(fd)
            raise
        return fd, _info_of(st)

    def _scan_dir(self, parts: Sequence[str]) -> list[tuple[str, os.stat_result]]:
        """The entries of ROOT/parts… with their lstat: [] if it is missing, NotFound if it is no
        directory or a symlink is on the way (O_DIRECTORY|O_NOFOLLOW: ENOTDIR of a symlink)."""
        try:
            fd = self._open(parts, DIR_FLAGS)
        except FileNotFoundError:
            return []  # an empty camera is no error
        try:
            # scandir(fd) lstat()s its entries in that very directory, so only while it is open.
            with os.scandir(fd) as entries:
                return [(e.name, st) for e in entries if (st := _lstat(e)) is not None]
        finally:
            os.close(fd)

    # -- Storage ------------------------------------------------------------------------------

    async def open(self, clip: ClipRef, *, whole: bool = False) -> FileClip:
        """The clip's file, opened and checked; NotFound if absent.

        On the spot when the kernel's caches hold the path (a clip being watched: the common
        case, with no thread hop), else in one worker-thread call, so a cold disk never stalls
        the event loop (docs/benchmarks.md). `whole` (one S3 request) means nothing here.
        """
        fd, info = self._open_clip_cached(clip) or await self._open_clip_in_thread(clip)
        return FileClip(fd, info)

    def still_serves(self, clip: ClipRef, opened: FileClip, key: FileKey) -> bool:
        """Whether `opened` may serve the clip again, answered at once from the kernel's caches.

        True only if the file is still linked (st_nlink > 0), unchanged since `key` was taken
        (same inode, size and mtime: the same ObjectInfo), and the clip's path, resolved now
        with no symlink followed anywhere on it, names that very file. Deleted (retention, a
        customer's delete), replaced, rewritten or moved: False, and the caller opens the clip
        anew, as for a first request, which answers as if nothing had been held. False too
        whenever the kernel cannot say without the disk (RESOLVE_CACHED) or openat2 is missing.
        """
        try:
            st = os.fstat(opened.fileno())
        except (OSError, StorageUnavailable):
            return False
        if st.st_nlink == 0 or file_key(st) != key:
            return False
        path = f"{self._root_text}/{clip.customer_id}/{clip.camera_id}/{clip.clip_id}"
        try:
            probe = openat2(AT_FDCWD, path, _PROBE_FLAGS, _PROBE_RESOLVE)
        except OSError:
            return False
        try:
            named = os.fstat(probe)
        except OSError:
            return False
        finally:
            os.close(probe)
        return (named.st_dev, named.st_ino) == (st.st_dev, st.st_ino)

    async def _open_clip_in_thread(self, clip: ClipRef) -> tuple[int, ObjectInfo]:
        # Shielded: cancelled mid-call, the fd would be opened in the thread and never closed.
        # A cancellation comes at the caller's next await, once FileClip owns the fd.
        with anyio.CancelScope(shield=True):
            opened = await _in_thread("clip", lambda: self._open_clip(clip))
        return opened

    async def list_clips(self, camera: CameraRef) -> list[ListedClip]:
        """The clips under one camera; names that are not valid clip ids are skipped."""
        return await _in_thread("camera", lambda: self._list_clips(camera))

    def _list_clips(self, camera: CameraRef) -> list[ListedClip]:
        if not (is_valid_id(camera.customer_id) and is_valid_id(camera.camera_id)):
            return []
        clips = []
        for name, st in self._scan_dir((camera.customer_id, camera.camera_id)):
            # Only regular files: symlinks are not listed (and a read refuses them).
            if clip_recorded_at(name) is not None and stat.S_ISREG(st.st_mode):
                clips.append(ListedClip(name, st.st_size))
        return sorted(clips, key=lambda c: c.clip_id)

    async def list_cameras(self, customer_id: str) -> list[str]:
        """Camera ids with a directory under the customer; other names are skipped."""
        return await _in_thread("customer", lambda: self._list_cameras(customer_id))

    def _list_cameras(self, customer_id: str) -> list[str]:
        if not is_valid_id(customer_id):
            return []
        return _subdirectories(self._scan_dir((customer_id,)))

    async def plan_deletion(self, clip: ClipRef) -> Deletion:
        """The clip's one file, if it is a regular file reached without a symlink; else NotFound."""
        await _in_thread("clip", lambda: self._in_camera(clip, _regular_file_in))
        return Deletion(clip, (StoredVersion(None),))

    async def delete(self, deletion: Deletion) -> None:
        """Unlink the clip's file through the fd of its camera directory (never by its path)."""
        await _in_thread("clip", lambda: self._in_camera(deletion.clip, _unlink_in))

    def _in_camera(self, clip: ClipRef, act: Callable[[int, str], None]) -> None:
        """Run act(camera_dir_fd, clip_id) on the camera directory open_beneath opened."""
        self._check_ids(clip)
        camera = self._open((clip.customer_id, clip.camera_id), DIR_FLAGS)
        try:
            act(camera, clip.clip_id)
        finally:
            os.close(camera)

    async def put(self, clip: ClipRef, data: bytes) -> None:
        """Write the clip atomically: readers see the old bytes or the new, never a mix."""
        await _in_thread("clip", lambda: self._put(clip, data))

    def _put(self, clip: ClipRef, data: bytes) -> None:
        self._check_ids(clip)
        camera = self._make_dirs((clip.customer_id, clip.camera_id))
        # The temp name starts with "." so it is never a valid id and never listed.
        temp = f".put-{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, _CREATE_FLAGS, 0o600, dir_fd=camera)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, clip.clip_id, src_dir_fd=camera, dst_dir_fd=camera)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=camera)
                raise
        finally:
            os.close(camera)

    def _make_dirs(self, parts: Sequence[str]) -> int:
        """An fd on ROOT/parts…, each directory made (through its parent's fd) if missing."""
        for depth in range(1, len(parts) + 1):
            try:
                os.close(self._open(parts[:depth], DIR_FLAGS))
            except FileNotFoundError:
                parent = self._open(parts[: depth - 1], DIR_FLAGS)
                try:
                    with suppress(FileExistsError):
                        os.mkdir(parts[depth - 1], dir_fd=parent)
                finally:
                    os.close(parent)
        return self._open(parts, DIR_FLAGS)

    async def check(self) -> None:
        """Raise StorageUnavailable unless the root is a readable, searchable directory."""
        ok = await _in_thread("storage root", self._root_ok)
        if not ok:
            raise StorageUnavailable(f"The footage directory {self.root} is not readable.")

    def _root_ok(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.R_OK | os.X_OK)

    async def walk(self) -> AsyncIterator[StoredObject]:
        """Every file, symlink and special file under the root, in sorted path order."""
        async for found in self._walk(""):
            yield found

    async def _walk(self, relative: str) -> AsyncIterator[StoredObject]:
        directory = self.root / relative if relative else self.root
        for name, kind in await _in_thread("directory", lambda: _classified(directory)):
            path = f"{relative}/{name}" if relative else name
            if kind is None:
                async for found in self._walk(path):
                    yield found
            else:
                yield StoredObject(path, kind)

    async def close(self) -> None:
        """Nothing to release: every opened clip closes its own fd."""


class FileClip:
    """One opened clip file: its ObjectInfo, and preads on that very fd (OpenClip)."""

    __slots__ = ("__weakref__", "_fd", "_release", "info")

    def __init__(self, fd: int, info: ObjectInfo) -> None:
        self._fd = fd
        self.info = info
        # Closes the fd exactly once: on close(), or if the clip is dropped unclosed (say, a
        # response built and never sent), so no path leaks it and none closes it twice.
        self._release = weakref.finalize(self, os.close, fd)

    async def read(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Bytes start..end inclusive in chunks of at most FILE_CHUNK_SIZE."""
        nowait = _NOWAIT is not None
        position = start
        while position <= end:
            if not self._release.alive:  # the fd number may already belong to another file
                raise StorageUnavailable("The clip was closed while it was being read.")
            size = min(FILE_CHUNK_SIZE, end - position + 1)
            chunk, nowait = await _read_at(self._fd, size, position, nowait)
            if not chunk:
                # The file shrank under us: the promised Content-Length can no longer be met.
                raise StorageUnavailable("The clip changed while it was being read.")
            position += len(chunk)
            yield chunk

    def fileno(self) -> int:
        """The open file's descriptor, for sendfile (gateway/zerocopy.py, which dups it)."""
        if not self._release.alive:  # the number may already belong to another file
            raise StorageUnavailable("The clip was closed while it was being read.")
        return self._fd

    async def close(self) -> None:
        """Close the fd (once; later calls do nothing)."""
        self.close_now()

    def close_now(self) -> None:
        """close(), for a caller that does not await (gateway/playback/held.py)."""
        with suppress(OSError):  # nothing was written through it: a failed close loses nothing
            self._release()


FileKey = tuple[int, int, int, int]
"""What identifies one state of one file: device, inode, size, mtime (ns)."""


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _info_of(st: os.stat_result) -> ObjectInfo:
    modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
    return ObjectInfo(size=st.st_size, etag=etag_for(st), last_modified=modified)


def _pread(fd: int, size: int, offset: int) -> Callable[[], bytes]:
    # pread takes the offset with it, so no shared file position is ever moved.
    return lambda: os.pread(fd, size, offset)


async def _read_at(fd: int, size: int, offset: int, nowait: bool) -> tuple[bytes, bool]:
    """A chunk, from the page cache on the spot if it can be, else in a worker thread; and
    whether to try the page cache first next time. The first chunk too: a hot 64 KiB range
    then costs no thread hop beyond the open (docs/benchmarks.md)."""
    if nowait:
        try:
            cached = _read_cached(fd, size, offset)
        except _NoWaitUnsupported:
            nowait = False  # this filesystem refuses RWF_NOWAIT: threads from now on
        else:
            if cached is not None:
                return cached, True
    return await _in_thread("clip", _pread(fd, size, offset)), nowait


def _read_cached(fd: int, size: int, offset: int) -> bytes | None:
    """The bytes if the page cache holds them, read on the spot; None if it would need the disk.

    preadv2(RWF_NOWAIT) returns EAGAIN instead of waiting for the disk, so the event loop never
    stalls on a slow one, and a hot clip streams without a worker-thread hop per chunk, the largest
    cost of streaming it (docs/benchmarks.md). _NoWaitUnsupported where the filesystem refuses it.
    """
    assert _NOWAIT is not None
    buffer = bytearray(size)
    try:
        received = os.preadv(fd, [buffer], offset, _NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            raise _NoWaitUnsupported from exc
        with _translated("clip"):
            raise
    if not received:
        return None  # nothing cached yet (or the end): let a thread see
    if received < size:
        del buffer[received:]  # part of it was cached: send that, the rest comes next
    # A bytearray, not a copy into bytes: the copy cost as much as the hop it saves. Every
    # consumer takes any bytes-like body (len, slicing, the ASGI server's transport.write),
    # and nothing keeps or reuses the buffer after it is sent.
    return cast(bytes, buffer)


class _NoWaitUnsupported(Exception):
    """This file's filesystem cannot read without blocking (EOPNOTSUPP)."""


# RWF_NOWAIT exists on Linux ≥ 4.14 (Python exposes it there only).
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def _subdirectories(entries: list[tuple[str, os.stat_result]]) -> list[str]:
    """The names of real (not symlinked) subdirectories that are valid ids."""
    return sorted(name for name, st in entries if is_valid_id(name) and stat.S_ISDIR(st.st_mode))


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The entry's own lstat, or None if it went away since the directory was read."""
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None


def _regular_file_in(directory: int, name: str) -> None:
    """NotFound unless `name` in that directory is a regular file (a symlink is not one)."""
    if not stat.S_ISREG(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode):
        raise NotFound("No such clip.")


def _unlink_in(directory: int, name: str) -> None:
    """Unlink `name` from that directory; a symlink put there since is removed, not followed."""
    os.unlink(name, dir_fd=directory)


def _classified(directory: Path) -> list[tuple[str, ObjectKind | None]]:
    """A directory's entries by name, each with its kind, or None for a real subdirectory."""
    found: list[tuple[str, ObjectKind | None]] = []
    for entry in _scan(directory):
        if entry.is_symlink():
            found.append((entry.name, ObjectKind.SYMLINK))  # reported, never followed
        elif entry.is_dir(follow_symlinks=False):
            found.append((entry.name, None))
        elif entry.is_file(follow_symlinks=False):
            found.append((entry.name, ObjectKind.FILE))
        else:
            found.append((entry.name, ObjectKind.OTHER))
    return sorted(found, key=lambda item: item[0])


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory, or [] if it does not exist (an empty camera is no error)."""
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as exc:
        if exc.errno in _MISSING:
            return []
        raise
