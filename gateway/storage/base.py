"""The one small storage interface every backend implements (file tree, S3).

Callers pass validated ClipRefs only; backends never see raw request text. Backends translate
their own failures into NotFound / StorageUnavailable: no botocore or OSError leaves them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.types import CameraRef, ClipRef

CHUNK_SIZE = 1024 * 1024  # 1 MiB: large enough to amortise a thread hop, small enough to stay flat


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What stat() knows about one stored clip."""

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


@dataclass(frozen=True, slots=True)
class ListedClip:
    clip_id: str
    size: int


class Storage(Protocol):
    """Footage storage: open or stat, read a byte range as chunks, list, delete."""

    async def open(self, clip: ClipRef) -> OpenClip:
        """The clip, opened for one response; NotFound if absent. The caller closes it."""
        ...

    async def stat(self, clip: ClipRef) -> ObjectInfo:
        """Size, ETag and modification time; NotFound if absent."""
        ...

    def read(self, clip: ClipRef, start: int, end: int) -> AsyncIterator[bytes]:
        """open(), then the clip's bytes start..end inclusive, closing it when the stream ends."""
        ...

    async def list_clips(self, camera: CameraRef) -> list[ListedClip]:
        """The clips stored under one camera (any order)."""
        ...

    async def list_customers(self) -> list[str]:
        """The customer ids that have footage (retention sweeps)."""
        ...

    async def list_cameras(self, customer_id: str) -> list[str]:
        """The camera ids that have footage for one customer."""
        ...

    async def delete(self, clip: ClipRef) -> None:
        """Remove the clip for good; NotFound if absent."""
        ...

    async def put(self, clip: ClipRef, data: bytes) -> None:
        """Store a clip (demo seeding and tests; footage normally arrives from cameras)."""
        ...

    async def check(self) -> None:
        """Raise StorageUnavailable unless the store answers (readiness)."""
        ...

    async def presign(self, clip: ClipRef, start: int | None, end: int | None, ttl: int) -> str:
        """A URL valid for ttl seconds that serves this object (and range); S3 only."""
        ...

    async def close(self) -> None:
        """Release clients and threads."""
        ...
