"""Footage storage: the interfaces of base (one per kind of caller) and two backends, by URL.

Each opener returns the same backend typed as the one interface its caller needs
(gateway.storage.base says which caller uses which, and why).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import ConfigError, StorageUnavailable
from gateway.settings import Settings
from gateway.storage.base import (
    CHUNK_SIZE,
    Inventory,
    ListedClip,
    ObjectInfo,
    OpenClip,
    Presigner,
    Seeder,
    Storage,
)
from gateway.types import DeliveryMode

if TYPE_CHECKING:
    from gateway.storage.fs import FileStorage
    from gateway.storage.s3 import S3Storage

__all__ = [
    "CHUNK_SIZE",
    "Inventory",
    "ListedClip",
    "ObjectInfo",
    "OpenClip",
    "Presigner",
    "Seeder",
    "Storage",
    "media_origins",
    "open_inventory",
    "open_seeder",
    "open_storage",
    "presigner_of",
]

_KEY = "FOOTGW_STORAGE"


def open_storage(settings: Settings) -> Storage:
    """The request path's view of the backend named by `settings.storage`."""
    return _open_backend(settings)


def open_seeder(settings: Settings) -> Seeder:
    """The backend, to put clips in place (demo seeding and tests)."""
    return _open_backend(settings)


def open_inventory(settings: Settings) -> Inventory:
    """The backend, to walk every stored object (retention, `storage check`)."""
    return _open_backend(settings)


def presigner_of(storage: Storage) -> Presigner | None:
    """The storage as a Presigner if its backend can presign (S3), else None."""
    return storage if isinstance(storage, Presigner) else None


def media_origins(settings: Settings) -> tuple[str, ...]:
    """Origins other than the gateway's that serve video to browsers (the console's CSP).

    Only redirect delivery sends a browser elsewhere: to the S3 origin that this same client
    configuration presigns for (endpoint, addressing style, region), asked of botocore rather
    than rebuilt here. Proxy and accel delivery serve every byte from the gateway itself.
    """
    if settings.delivery is not DeliveryMode.REDIRECT:
        return ()
    storage = _s3_storage(settings.storage.removeprefix("s3://"), settings.s3_endpoint_url)
    try:
        return (storage.url_origin(),)
    except StorageUnavailable as exc:  # no credentials to sign with: redirect cannot work
        raise ConfigError("FOOTGW_DELIVERY", f"redirect cannot presign S3 URLs: {exc}") from exc
    finally:
        storage.client.close()


def _open_backend(settings: Settings) -> FileStorage | S3Storage:
    """The backend named by `settings.storage`: `file://DIR` or `s3://BUCKET[/PREFIX]`."""
    url = settings.storage
    if url.startswith("file://"):
        return _file_storage(url.removeprefix("file://"))
    if url.startswith("s3://"):
        return _s3_storage(url.removeprefix("s3://"), settings.s3_endpoint_url)
    raise ConfigError(_KEY, f"must be file://DIR or s3://BUCKET[/PREFIX], got {url!r}")


def _file_storage(directory: str) -> FileStorage:
    # Not urlparse: the default `file://var/footage` is a relative path, not host "var".
    if not directory:
        raise ConfigError(_KEY, "file:// needs a directory")
    from gateway.storage.fs import FileStorage

    return FileStorage(Path(directory))


def _s3_storage(location: str, endpoint_url: str | None) -> S3Storage:
    bucket, _, prefix = location.partition("/")
    if not bucket:
        raise ConfigError(_KEY, "s3:// needs a bucket name")
    # Imported here so a file-only deployment never pays for loading boto3.
    from gateway.storage.s3 import S3Storage

    return S3Storage(bucket, prefix, endpoint_url)
