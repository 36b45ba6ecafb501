"""The storage interfaces, one per kind of caller, so each receives only what it uses.

- `Storage`: what the request path asks of footage (open a clip for one response, list one
  camera's clips, list one customer's cameras, delete a clip and every version of it,
  readiness, close). Retention deletes through it too, so both delete one way.
- `Presigner`: a URL the client fetches from the store itself (`FOOTGW_DELIVERY=redirect`).
  S3 only: a directory has no URL to hand out, so the file store does not implement it, and
  settings refuse `redirect` without `s3://` storage.
- `Seeder`: writes a clip. Footage arrives from cameras, never through the gateway; only the
  demo and the tests put clips in place.
- `Inventory`: every stored object, misnamed ones included. The retention sweep and
  `footage-gateway storage check` walk the whole store; the request path never does, so the
  walk lives apart from `Storage`: a request handler cannot enumerate other customers' footage
  by mistake, and the walk can report what the request path must silently refuse (a symlink, a
  stray file) without those ever becoming reachable by a request.

Callers pass validated ClipRefs only; backends never see raw request text. Backends translate
their own failures into NotFound / StorageUnavailable: no botocore or OSError leaves them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from gateway.types import CameraRef, ClipRef

CHUNK_SIZE = 1024 * 1024  # 1 MiB: large enough to amortise a thread hop, small enough to stay flat


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What an opened clip is: size, ETag, modification time."""

    size: int
    etag: str  # already quoted, e.g. '"abc"'
    last_modified: datetime


class OpenClip(Protocol):
    """One clip opened for a response: what it is, and reads bound to that very object.

    Whatever served `info` serves the bytes too (the same file descriptor, the same S3 object
    version), so the headers never describe a different clip than the body. Its owner must call
    close() on every path, once it is done with it; close() is idempotent.
    """

    @property
    def info(self) -> ObjectInfo:
        """Size, ETag and modification time of the opened object."""
        ...

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end inclusive as chunks of at most CHUNK_SIZE; stops early if closed."""
        ...

    async def close(self) -> None:
        """Release what the clip holds (a file descriptor); safe to call more than once."""
        ...


def still_stored(opened: OpenClip) -> bool:
    """False once an opened local clip has been deleted (unlinked) since it was opened.

    An open descriptor keeps a deleted file readable; a stream that outlives its clip's
    deletion (a customer's delete, retention) must stop rather than go on sending what no
    longer exists (the stream's re-check asks this, gateway/pipeline.py). An S3 clip has no
    descriptor to ask: True, and its next request answers 404.
    """
    fileno = getattr(opened, "fileno", None)
    if fileno is None:
        return True
    try:
        return os.fstat(fileno()).st_nlink > 0
    except (OSError, ValueError):  # closed: nothing more will be read from it anyway
        return False


@dataclass(frozen=True, slots=True)
class ListedClip:
    clip_id: str
    size: int


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One stored version of a clip: an S3 version or delete marker, or a file (no version id)."""

    version_id: str | None  # None: the store keeps no versions (a file)
    delete_marker: bool = False

    def as_detail(self) -> dict[str, str | bool | None]:
        """How a footage.deleted event lists it (contract §7)."""
        return {"version_id": self.version_id, "delete_marker": self.delete_marker}


@dataclass(frozen=True, slots=True)
class Deletion:
    """What deleting one clip removes: every stored version of it, delete markers included.

    Planned first (Storage.plan_deletion), so the audit event can say what goes, and so a lock
    that keeps any version refuses the whole deletion before anything is removed.
    """

    clip: ClipRef
    versions: tuple[StoredVersion, ...]

    def as_detail(self) -> list[dict[str, str | bool | None]]:
        """The versions as a footage.deleted event's `detail.removed`."""
        return [version.as_detail() for version in self.versions]


class Storage(Protocol):
    """Footage as the request path sees it: open, list, delete, readiness."""

    async def open(self, clip: ClipRef, *, whole: bool = False) -> OpenClip:
        """The clip, opened for one response; NotFound if absent. The caller closes it.

        whole: the response will read the whole clip (a plain GET: no Range, no condition).
        A store may then start fetching it at once (S3: one GetObject instead of HeadObject
        and GetObject); otherwise it must not.
        """
        ...

    async def list_clips(self, camera: CameraRef) -> list[ListedClip]:
        """The clips stored under one camera (sorted by clip id); other names are skipped."""
        ...

    async def list_cameras(self, customer_id: str) -> list[str]:
        """The camera ids that have footage for one customer (sorted)."""
        ...

    async def plan_deletion(self, clip: ClipRef) -> Deletion:
        """Every stored version of the clip; NotFound if there is none, DeletionBlocked if an
        object lock or legal hold keeps any of them (then nothing may be removed)."""
        ...

    async def delete(self, deletion: Deletion) -> None:
        """Remove every version the plan lists, for good; DeletionBlocked if the store refuses."""
        ...

    async def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (readiness)."""
        ...

    async def close(self) -> None:
        """Release clients and threads."""
        ...


@runtime_checkable
class Presigner(Protocol):
    """Hands out a URL that serves one clip straight from the store (S3 only)."""

    async def presign(self, clip: ClipRef, start: int | None, end: int | None, ttl: int) -> str:
        """A URL valid for ttl seconds that serves this object (and range)."""
        ...


class Seeder(Protocol):
    """Puts clips in place: the demo and the tests (footage normally arrives from cameras)."""

    async def put(self, clip: ClipRef, data: bytes) -> None:
        """Store a clip atomically: readers see the old bytes or the new, never a mix."""
        ...

    async def close(self) -> None:
        """Release clients and threads."""
        ...


class ObjectKind(StrEnum):
    """What a walked object is; only a regular file can be a clip."""

    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"  # a FIFO, a socket, a device: not a regular file


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object found by a walk, by its path under the store's root ("/"-separated)."""

    path: str
    kind: ObjectKind


class Inventory(Protocol):
    """Every object in the store, whatever its name (retention, `storage check`)."""

    def walk(self) -> AsyncIterator[StoredObject]:
        """Every object under the root, misnamed or not; directories are descended, not listed.

        Symlinks are reported, never followed. StorageUnavailable if part of the store cannot
        be read: a walk never skips what it could not see.
        """
        ...

    async def close(self) -> None:
        """Release clients and threads."""
        ...
