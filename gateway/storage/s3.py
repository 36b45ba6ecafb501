"""Footage in an S3 bucket (or MinIO, or any S3-compatible store): [PREFIX/]customer/camera/clip.

boto3 is synchronous, so every call runs in a worker thread. One client is built at construction
and shared: botocore clients are thread-safe, and its connection pool is sized for many streams.

Errors are translated by s3_errors.py; an opened clip and its body stream are s3_clip.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import boto3
from botocore.config import Config

from gateway.errors import DeletionBlocked, NotFound, StorageUnavailable
from gateway.storage.base import (
    Deletion,
    ListedClip,
    ObjectKind,
    StoredObject,
    StoredVersion,
)
from gateway.storage.s3_clip import S3Clip, object_info, stream_body
from gateway.storage.s3_errors import in_thread, refused, translated
from gateway.types import CameraRef, ClipRef, clip_recorded_at, is_valid_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READER_THREADS = 40
MAX_PRESIGN_TTL = 60  # contract §2: a presigned URL lives at most 60 s


def _version_id(item: Any) -> str | None:
    """A listed version's id; None for S3's "null", the one version of an unversioned key."""
    version_id = str(item["VersionId"])
    return None if version_id == "null" else version_id


def _version_param(version_id: str | None) -> dict[str, Any]:
    """The VersionId parameter for one version; none for the null version (addressed by key)."""
    return {} if version_id is None else {"VersionId": version_id}


def _client_config(connect_timeout: float, read_timeout: float, max_attempts: int) -> Config:
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,  # per socket read, so it bounds a stalled stream too
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        # Each open stream holds a pooled connection until its body is closed.
        max_pool_connections=64,
        # SigV4 signs the Range header into presigned URLs (see presign()); SigV2 would not.
        signature_version="s3v4",
    )


class S3Storage:
    """Storage, Presigner, Seeder and Inventory over one bucket and an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config = _client_config(connect_timeout, read_timeout, max_attempts)
        if endpoint_url is not None:
            # MinIO and test servers are addressed by path: bucket.host names rarely resolve.
            config = config.merge(Config(s3={"addressing_style": "path"}))
        with translated():
            self._client: S3Client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=config
            )
        # The threads that read response bodies ahead of the client (ReadAhead); as many as
        # anyio's own pool. A reading job never waits for its client (it returns when its room
        # is full), so a slow client holds no thread and streams never queue behind it.
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="s3-read")

    @property
    def client(self) -> S3Client:
        """The boto3 client (for event hooks and metrics; do not call it from the event loop)."""
        return self._client

    def _key(self, clip: ClipRef) -> str:
        if not clip.has_valid_ids():
            raise NotFound("No such clip.")  # defence in depth: ids are validated upstream
        return f"{self.prefix}/{clip.key}" if self.prefix else clip.key

    def _dir(self, *parts: str) -> str:
        """The key prefix of a "directory", with its trailing slash ("" for an unprefixed root)."""
        names = [self.prefix, *parts] if self.prefix else list(parts)
        return "/".join(names) + "/" if names else ""

    async def open(self, clip: ClipRef, *, whole: bool = False) -> S3Clip:
        """The clip as S3 has it now; its reads fetch that same version (If-Match its ETag).

        whole: the caller will read the whole clip (a plain GET). Then open() is the GetObject
        itself, its headers describe the clip and its body is the one read: one request instead
        of HeadObject and then GetObject. Otherwise HeadObject: a HEAD, a 304 or a range never
        start a whole body.
        """
        key = self._key(clip)
        if not whole:
            head = await in_thread(lambda: self._client.head_object(Bucket=self.bucket, Key=key))
            return S3Clip(key, object_info(head), self.get_range, self._readers)
        # Shielded: cancelled mid-call, the body would be opened in the thread and never closed
        # (holding a pooled connection); the call itself is bounded by the client's timeouts.
        with anyio.CancelScope(shield=True):
            response = await in_thread(lambda: self._client.get_object(Bucket=self.bucket, Key=key))
        return S3Clip(key, object_info(response), self.get_range, self._readers, response["Body"])

    async def get_range(
        self, key: str, start: int, end: int, if_match: str | None = None
    ) -> AsyncIterator[bytes]:
        """One ranged GetObject of `key` (of the version whose ETag is `if_match`, if given)."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            # Ask S3 for the range only: never fetch a whole clip to serve part of it.
            "Range": f"bytes={start}-{end}",
        }
        if if_match is not None:
            params["IfMatch"] = if_match
        # Shielded, as in open().
        with anyio.CancelScope(shield=True):
            response = await in_thread(lambda: self._client.get_object(**params))
        chunks = stream_body(response["Body"], end - start + 1, self._readers)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            # Closed here, not left to the garbage collector: that closes the body now.
            with anyio.CancelScope(shield=True):
                await chunks.aclose()

    async def list_clips(self, camera: CameraRef) -> list[ListedClip]:
        """The clips directly under one camera's prefix; keys that are not clip ids are skipped."""
        prefix = self._dir(camera.customer_id, camera.camera_id)
        pages = await in_thread(lambda: self._list(prefix))
        clips = []
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if clip_recorded_at(name) is not None:
                    clips.append(ListedClip(name, item["Size"]))
        return sorted(clips, key=lambda c: c.clip_id)

    async def list_cameras(self, customer_id: str) -> list[str]:
        """The camera "directories" under a customer; names that are not ids are skipped."""
        return await self._subdirectories(self._dir(customer_id))

    async def _subdirectories(self, prefix: str) -> list[str]:
        pages = await in_thread(lambda: self._list(prefix))
        names = (
            common["Prefix"][len(prefix) :].rstrip("/")
            for page in pages
            for common in page.get("CommonPrefixes", [])
        )
        return sorted(name for name in names if is_valid_id(name))

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        """Every ListObjectsV2 page under a prefix, one level deep (blocking)."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        return [dict(page) for page in pages]

    async def plan_deletion(self, clip: ClipRef) -> Deletion:
        """Every version and delete marker of the clip's exact key, oldest first, markers last.

        On a versioned bucket DeleteObject without a VersionId only adds a delete marker and the
        footage stays (docs/contract.md §4), so a deletion lists what there is and removes each.
        NotFound when no version holds footage; DeletionBlocked, before anything is removed,
        when an object lock or legal hold keeps one.
        """
        key = self._key(clip)
        versions = await in_thread(lambda: self._versions(key))
        if not any(not v.delete_marker for v in versions):
            raise NotFound("No such clip.")
        blocked = await in_thread(lambda: self._locked(key, versions))
        if blocked:
            raise DeletionBlocked(
                "An object lock or legal hold keeps this clip; it cannot be deleted yet.",
                blocked=blocked,
            )
        return Deletion(clip, versions)

    def _versions(self, key: str) -> tuple[StoredVersion, ...]:
        """The key's versions, oldest first, then its delete markers (blocking)."""
        paginator = self._client.get_paginator("list_object_versions")
        versions: list[StoredVersion] = []
        markers: list[StoredVersion] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for kind, found in (("Versions", versions), ("DeleteMarkers", markers)):
                for item in page.get(kind, []):  # type: ignore[attr-defined]
                    if item["Key"] == key:  # a prefix also matches longer keys
                        found.append(StoredVersion(_version_id(item), kind == "DeleteMarkers"))
        # S3 lists a key's versions newest first. Oldest first and the markers last: a deletion
        # cut short never leaves an older version as the one a GET serves.
        return (*reversed(versions), *reversed(markers))

    def _locked(self, key: str, versions: tuple[StoredVersion, ...]) -> tuple[str, ...]:
        """The version ids a legal hold or an unexpired retention keeps (blocking)."""
        now = datetime.now(UTC)
        blocked = []
        for version in versions:
            if version.delete_marker:
                continue  # a delete marker holds no footage and cannot be locked
            head = self._client.head_object(
                Bucket=self.bucket, Key=key, **_version_param(version.version_id)
            )
            held = head.get("ObjectLockLegalHoldStatus") == "ON"
            until = head.get("ObjectLockRetainUntilDate")
            if held or (until is not None and until > now):
                blocked.append(version.version_id or "null")
        return tuple(blocked)

    async def delete(self, deletion: Deletion) -> None:
        """DeleteObject with the VersionId of each planned version, in the plan's order."""
        key = self._key(deletion.clip)
        removed: list[str] = []
        for version in deletion.versions:
            version_id = version.version_id
            try:
                await in_thread(functools.partial(self._delete_version, key, version_id))
            except StorageUnavailable as exc:
                if not refused(exc):
                    raise
                # A lock or hold placed since the plan: what is gone is gone, the rest stays.
                raise DeletionBlocked(
                    "An object lock or legal hold keeps this clip; it cannot be deleted yet.",
                    blocked=(version_id or "null",),
                    removed=tuple(removed),
                ) from exc
            removed.append(version_id or "null")

    def _delete_version(self, key: str, version_id: str | None) -> None:
        # Never BypassGovernanceRetention: a lock is the bucket owner's decision, not ours.
        self._client.delete_object(Bucket=self.bucket, Key=key, **_version_param(version_id))

    async def put(self, clip: ClipRef, data: bytes) -> None:
        """Store a clip in one PutObject (atomic in S3: readers see old or new, never a mix)."""
        key = self._key(clip)
        await in_thread(lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data))

    async def check(self) -> None:
        """Raise StorageUnavailable unless the bucket answers HeadBucket."""
        try:
            await in_thread(lambda: self._client.head_bucket(Bucket=self.bucket))
        except NotFound as exc:  # HeadBucket's bare 404: the bucket is missing
            raise StorageUnavailable(f"The bucket {self.bucket} does not exist.") from exc

    async def presign(self, clip: ClipRef, start: int | None, end: int | None, ttl: int) -> str:
        """A GetObject URL valid for min(ttl, 60) s, limited to one byte range when given.

        Limits, by what S3 offers:
        - S3 has no query parameter for a range, so the range is a *signed header*: with SigV4
          query signing botocore puts `range` in X-Amz-SignedHeaders. The URL then only works
          when the client sends exactly `Range: bytes=start-end` (redirect-following players and
          `curl -L -r` resend the original Range); without it S3 rejects the signature (403).
          Some S3-compatible servers (and moto) do not check signatures, so there it is advisory.
        - The URL is a bearer capability for its lifetime: anyone holding it can fetch the bytes,
          which is why the lifetime is capped at 60 s and every presign is audited upstream.
        - The response carries `Cache-Control: private, no-store` through S3's response override.
        The object's existence is not checked here (callers open() first to resolve the range).
        """
        key = self._key(clip)
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseCacheControl": "private, no-store",
        }
        if start is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        expires = max(1, min(ttl, MAX_PRESIGN_TTL))
        return await in_thread(
            lambda: self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires
            )
        )

    def url_origin(self) -> str:
        """The origin (scheme://host[:port]) presigned URLs point at; signs locally, no request."""
        with translated():
            url = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": f"{self._dir()}origin"},
                ExpiresIn=1,
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not re.fullmatch(r"[\w.:\[\]-]+", parts.netloc):
            raise StorageUnavailable("The S3 endpoint is not a plain http(s) origin.")
        return f"{parts.scheme}://{parts.netloc}"

    async def walk(self) -> AsyncIterator[StoredObject]:
        """Every key under the prefix, in S3's (lexicographic) key order, one page at a time."""
        prefix = self._dir()
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        while (page := await in_thread(lambda: next(pages, None))) is not None:
            for item in page.get("Contents", []):
                # S3 has no symlinks or special files: every key is an object.
                yield StoredObject(item["Key"][len(prefix) :], ObjectKind.FILE)

    async def close(self) -> None:
        """Close the client's connection pool and the read-ahead threads."""
        await in_thread(self._client.close)
        await anyio.to_thread.run_sync(self._readers.shutdown)
