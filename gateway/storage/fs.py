"""Footage in a local directory tree: ROOT/customer/camera/clip.

Every blocking call runs in a worker thread (anyio.to_thread) so one slow disk never stalls the
event loop. Every OSError is translated here: ENOENT/ENOTDIR -> NotFound, anything else ->
StorageUnavailable; nothing else leaves this module.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

import anyio
import anyio.to_thread

from gateway.errors import NotFound, StorageUnavailable
from gateway.storage.base import CHUNK_SIZE, ListedClip, ObjectInfo
from gateway.types import CameraRef, ClipRef, clip_recorded_at, is_valid_id

T = TypeVar("T")

# Half the storage-wide ceiling: read from the page cache on the spot (_read_cached) there is no
# thread hop left to amortise, and 512 KiB streamed as fast as 1 MiB while 16 streams held
# about 20 MiB less (issue 7, docs/benchmarks.md).
FILE_CHUNK_SIZE = CHUNK_SIZE // 2
# ELOOP: O_NOFOLLOW met a symlink (or a loop) where the clip's file should be; refused as absent.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
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
    """The Storage protocol over a directory; see gateway.storage.base for each method."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.root = Path(os.path.realpath(root, strict=True))
        except OSError as exc:
            raise StorageUnavailable(f"Cannot use {root} as the footage directory: {exc}.") from exc

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

    def _clip_path(self, clip: ClipRef) -> Path:
        """The resolved on-disk path of a clip (blocking: resolves symlinks)."""
        if not (
            is_valid_id(clip.customer_id)
            and is_valid_id(clip.camera_id)
            and clip_recorded_at(clip.clip_id) is not None
        ):
            raise NotFound("No such clip.")
        return self._contained(self.root / clip.customer_id / clip.camera_id / clip.clip_id)

    def _open(self, clip: ClipRef) -> int:
        """An fd on the clip's regular file (blocking)."""
        fd = os.open(self._clip_path(clip), _OPEN_FLAGS)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotFound("No such clip.")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_and_read(self, clip: ClipRef, size: int, offset: int) -> tuple[int, bytes]:
        """An fd on the clip and its first chunk: one thread hop, all a short range needs."""
        fd = self._open(clip)
        try:
            return fd, os.pread(fd, size, offset)
        except BaseException:
            os.close(fd)
            raise

    # -- Storage ------------------------------------------------------------------------------

    async def stat(self, clip: ClipRef) -> ObjectInfo:
        """Size, ETag and modification time; NotFound if absent."""
        return await _in_thread("clip", lambda: self._stat(clip))

    def _stat(self, clip: ClipRef) -> ObjectInfo:
        st = os.stat(self._clip_path(clip), follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("No such clip.")
        modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
        return ObjectInfo(size=st.st_size, etag=etag_for(st), last_modified=modified)

    async def read(self, clip: ClipRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive in chunks of at most FILE_CHUNK_SIZE, one fd per stream."""
        first = max(0, min(FILE_CHUNK_SIZE, end - start + 1))
        # Shielded: cancelled mid-open, the fd would be opened in the thread and never closed.
        with anyio.CancelScope(shield=True):
            fd, chunk = await _in_thread("clip", lambda: self._open_and_read(clip, first, start))
        nowait = _NOWAIT is not None
        try:
            position = start
            while position <= end:
                if not chunk:
                    # The file shrank under us: the promised Content-Length can no longer be met.
                    raise StorageUnavailable("The clip changed while it was being read.")
                position += len(chunk)
                yield chunk
                if position <= end:
                    size = min(FILE_CHUNK_SIZE, end - position + 1)
                    chunk, nowait = await _read_at(fd, size, position, nowait)
        finally:
            # Runs on exhaustion, on error, and on aclose() when the client went away.
            os.close(fd)

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

    async def list_customers(self) -> list[str]:
        """Customer ids with a directory under the root; other names are skipped."""
        return await _in_thread("storage root", lambda: _subdirectories(self.root))

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

    async def presign(self, clip: ClipRef, start: int | None, end: int | None, ttl: int) -> str:
        """Not possible for files: settings refuse `redirect` delivery without s3:// storage."""
        raise StorageUnavailable("Presigned URLs need s3:// storage.")

    async def close(self) -> None:
        """Nothing to release: every stream closes its own fd."""


def _pread(fd: int, size: int, offset: int) -> Callable[[], bytes]:
    # pread takes the offset with it, so no shared file position is ever moved.
    return lambda: os.pread(fd, size, offset)


async def _read_at(fd: int, size: int, offset: int, nowait: bool) -> tuple[bytes, bool]:
    """The next chunk, from the page cache on the spot if it can be, else in a worker thread;
    and whether to try the page cache first next time."""
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


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of a directory, or [] if it does not exist (an empty camera is no error)."""
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as exc:
        if exc.errno in _MISSING:
            return []
        raise
