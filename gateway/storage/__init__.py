"""Footage storage: one small interface (base.Storage) and its two backends, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.storage.base import CHUNK_SIZE, ListedClip, ObjectInfo, OpenClip, Storage

__all__ = ["CHUNK_SIZE", "ListedClip", "ObjectInfo", "OpenClip", "Storage", "open_storage"]

_KEY = "FOOTGW_STORAGE"


def open_storage(settings: Settings) -> Storage:
    """The backend named by `settings.storage`: `file://DIR` or `s3://BUCKET[/PREFIX]`."""
    url = settings.storage
    if url.startswith("file://"):
        return _file_storage(url.removeprefix("file://"))
    if url.startswith("s3://"):
        return _s3_storage(url.removeprefix("s3://"), settings.s3_endpoint_url)
    raise ConfigError(_KEY, f"must be file://DIR or s3://BUCKET[/PREFIX], got {url!r}")


def _file_storage(directory: str) -> Storage:
    # Not urlparse: the default `file://var/footage` is a relative path, not host "var".
    if not directory:
        raise ConfigError(_KEY, "file:// needs a directory")
    from gateway.storage.fs import FileStorage

    return FileStorage(Path(directory))


def _s3_storage(location: str, endpoint_url: str | None) -> Storage:
    bucket, _, prefix = location.partition("/")
    if not bucket:
        raise ConfigError(_KEY, "s3:// needs a bucket name")
    # Imported here so a file-only deployment never pays for loading boto3.
    from gateway.storage.s3 import S3Storage

    return S3Storage(bucket, prefix, endpoint_url)
