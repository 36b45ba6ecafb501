"""Footage in a local directory tree: ROOT/customer/camera/clip.

Every blocking call runs in a worker thread (anyio.to_thread) so one slow disk never stalls the
event loop; only reads the page cache can answer at once run on the loop (_read_cached). Every
OSError is translated here: ENOENT/ENOTDIR -> NotFound, anything else -> StorageUnavailable;
nothing else leaves this module.

Containment: a clip is opened by its path under the root, then the file actually opened must
lie inside the root (its /proc/self/fd link names it, _opened_inside). Checking the open file
rather than a path resolved beforehand leaves no window for a directory symlink swapped in
between, and costs one readlink instead of os.path.realpath's lstat per component (issue 7).
Without /proc the path is resolved and checked first, as before (_clip_path).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

import anyio
import anyio.to_thread

from gateway.errors import NotFound, StorageUnavailable
from gateway.storage.base import CHUNK_SIZE, ListedClip, ObjectInfo, ObjectKind, StoredObject
from gateway.types import CameraRef, ClipRef, clip_recorded_at, is_valid_id

T = TypeVar("T")

# Half the storage-wide ceiling: read from the page cache on the spot (_read_cached) there is no
# thread hop left to amortise, and 512 KiB streamed as fast as 1 MiB while 16 streams held
# about 20 MiB less (issue 7, docs/benchmarks.md).
FILE_CHUNK_SIZE = CHUNK_SIZE // 2
# ELOOP: O_NOFOLLOW met a symlink (or a loop) where the clip's file should be; ENXIO: a socket
# (or a device without a driver) sits there. Neither is a clip: both are refused as absent.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO})
# O_NOFOLLOW: the final component must not be a symlink swapped in after we resolved the path.
# O_NONBLOCK: opening a FIFO planted in the tree must not hang a worker thread.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


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
        self._inside = os.path.join(self._root_text, "")  # "ROOT/": what every clip starts with
        self._fd_paths = _fd_paths_work(self._root_text)

    # -- paths -------------------------------------------------------------------------------

    def _contained(self, path: Path) -> Path:
        """`path` with every symlink resolved, refused unless it stays inside the root."""
        # realpath, not Path.resolve: on 3.11 resolve raises RuntimeError on a symlink loop.
        resolved = Path(os.path.realpath(path))
        if not resolved.is_relative_to(self.root):
            # Defence in depth: ids are validated upstream, so this means a symlink that points
            # out of the tree. Say "not found" rather than reveal anything about the target.
            raise NotFound("No such clip.")
        return resolved

    def _check_ids(self, clip: ClipRef) -> None:
        """NotFound unless every part of the clip's name is a valid id (no "..", no "/")."""
        if not clip.has_valid_ids():
            raise NotFound("No such clip.")

    def _clip_path(self, clip: ClipRef) -> Path:
        """The resolved on-disk path of a clip (blocking: resolves symlinks)."""
        self._check_ids(clip)
        return self._contained(self.root / clip.customer_id / clip.camera_id / clip.clip_id)

    def _path_to_open(self, clip: ClipRef) -> str:
        """The clip's path as named (its fd is checked once open), else resolved and checked."""
        if not self._fd_paths:
            return str(self._clip_path(clip))
        self._check_ids(clip)
        return os.path.join(self._root_text, clip.customer_id, clip.camera_id, clip.clip_id)

    def _opened_inside(self, fd: int) -> bool:
        """Whether the file behind fd lies inside the root, by the path the kernel gives it."""
        if not self._fd_paths:
            return True  # _path_to_open resolved and checked the path before opening it
        # The final component was opened with O_NOFOLLOW; directory symlinks on the way were
        # followed, and this is where they led. Opening a file outside before refusing it has
        # no effect worth guarding: only regular files pass, and only clip-id names are opened.
        return os.readlink(f"/proc/self/fd/{fd}").startswith(self._inside)

    def _open_clip(self, clip: ClipRef) -> tuple[int, ObjectInfo]:
        """An fd on the clip's regular file inside the root, and what fstat says of it.

        Blocking: everything a response needs from the disk before its headers, in one
        worker-thread call (issue 7).
        """
        fd = os.open(self._path_to_open(clip), _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and self._opened_inside(fd)):
                # A directory, a FIFO, or a file reached through a symlink out of the tree: say
                # "not found" rather than reveal anything about what is there.
                raise NotFound("No such clip.")
        except BaseException:
            os.close(fd)
            raise
        return fd, _info_of(st)

    # -- Storage ------------------------------------------------------------------------------

    async def open(self, clip: ClipRef) -> FileClip:
        """The clip's file, opened and checked in one worker-thread call; NotFound if absent."""
        # Shielded: cancelled mid-call, the fd would be opened in the thread and never closed.
        # A cancellation comes at the caller's next await, once FileClip owns the fd.
        with anyio.CancelScope(shield=True):
            fd, info = await _in_thread("clip", lambda: self._open_clip(clip))
        return FileClip(fd, info)

    async def list_clips(self, camera: CameraRef) -> list[ListedClip]:
        """The clips under one camera; names that are not valid clip ids are skipped."""
        return await _in_thread("camera", lambda: self._list_clips(camera))

    def _list_clips(self, camera: CameraRef) -> list[ListedClip]:
        if not (is_valid_id(camera.customer_id) and is_valid_id(camera.camera_id)):
            return []
        directory = self._contained(self.root / camera.customer_id / camera.camera_id)
        clips = []
        for entry in _scan(directory):
            # Only regular files: symlinks are not listed (read still checks containment).
            if clip_recorded_at(entry.name) is not None and entry.is_file(follow_symlinks=False):
                clips.append(ListedClip(entry.name, entry.stat(follow_symlinks=False).st_size))
        return sorted(clips, key=lambda c: c.clip_id)

    async def list_cameras(self, customer_id: str) -> list[str]:
        """Camera ids with a directory under the customer; other names are skipped."""
        return await _in_thread("customer", lambda: self._list_cameras(customer_id))

    def _list_cameras(self, customer_id: str) -> list[str]:
        if not is_valid_id(customer_id):
            return []
        return _subdirectories(self._contained(self.root / customer_id))

    async def delete(self, clip: ClipRef) -> None:
        """Remove the clip's file; NotFound if absent."""
        await _in_thread("clip", lambda: os.unlink(self._clip_path(clip)))

    async def put(self, clip: ClipRef, data: bytes) -> None:
        """Write the clip atomically: readers see the old bytes or the new, never a mix."""
        await _in_thread("clip", lambda: self._put(clip, data))

    def _put(self, clip: ClipRef, data: bytes) -> None:
        target = self._clip_path(clip)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temp name starts with "." so it is never a valid id and never listed.
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise

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

    async def close(self) -> None:
        """Close the fd (once; later calls do nothing)."""
        with suppress(OSError):  # nothing was written through it: a failed close loses nothing
            self._release()


def _info_of(st: os.stat_result) -> ObjectInfo:
    modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
    return ObjectInfo(size=st.st_size, etag=etag_for(st), last_modified=modified)


def _fd_paths_work(root: str) -> bool:
    """Whether /proc/self/fd names the file an fd has open (Linux with /proc mounted)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == root
    except OSError:
        return False
    finally:
        os.close(fd)


def _pread(fd: int, size: int, offset: int) -> Callable[[], bytes]:
    # pread takes the offset with it, so no shared file position is ever moved.
    return lambda: os.pread(fd, size, offset)


async def _read_at(fd: int, size: int, offset: int, nowait: bool) -> tuple[bytes, bool]:
    """A chunk, from the page cache on the spot if it can be, else in a worker thread; and
    whether to try the page cache first next time. The first chunk too: a hot 64 KiB range
    then costs no thread hop beyond the open (issue 7)."""
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
    stalls on a slow one, and a hot clip streams without a worker-thread hop per chunk, the
    largest cost of streaming it (issue 7). _NoWaitUnsupported where the filesystem refuses it.
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


def _subdirectories(directory: Path) -> list[str]:
    """The names of real (not symlinked) subdirectories that are valid ids."""
    return sorted(
        entry.name
        for entry in _scan(directory)
        if is_valid_id(entry.name) and entry.is_dir(follow_symlinks=False)
    )


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
