"""How S3's failures become ours (STYLE.md, "translate at the boundary"): no botocore or urllib3
type leaves the S3 store.

- NoSuchKey, and HeadObject's bare 404 -> NotFound.
- NoSuchBucket -> StorageUnavailable: a missing bucket is an operator's mistake, not a fact about
  one clip, and a 404 would hide it. (HeadObject cannot tell a missing bucket from a missing key,
  so a HEAD-first open() says NotFound there; check() uses HeadBucket and catches it.)
- PreconditionFailed (an opened clip's If-Match no longer holds) and InvalidRange (it shrank)
  -> StorageUnavailable: the object changed after open(), so the headers would not describe it.
- A body that ends before its length (BodyEnded) -> StorageUnavailable.
- Any other ClientError, every connection/endpoint/timeout/credential error -> StorageUnavailable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as URLLib3Error

from gateway.errors import NotFound, StorageUnavailable
from gateway.storage.readahead import BodyEnded

T = TypeVar("T")

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# The object is no longer the one open() saw: replaced (If-Match fails) or shorter (the range).
_CHANGED_CODES = frozenset({"PreconditionFailed", "412", "InvalidRange"})
# What S3 says when object lock keeps a version: AccessDenied ("WORM protected").
_LOCKED_CODES = frozenset({"AccessDenied", "InvalidRequest"})
# Everything boto3/botocore/urllib3 can raise for a request or a body read; OSError covers sockets.
_BACKEND_ERRORS = (BotoCoreError, ClientError, URLLib3Error, OSError)


@contextmanager
def translated() -> Iterator[None]:
    """Map backend exceptions to NotFound / StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            raise NotFound("No such clip.") from exc
        if code in _CHANGED_CODES:
            raise StorageUnavailable("The clip changed while it was being read.") from exc
        raise StorageUnavailable(f"The footage store refused the request ({code}).") from exc
    except BodyEnded as exc:
        raise StorageUnavailable("The footage store ended the clip early.") from exc
    except _BACKEND_ERRORS as exc:
        raise StorageUnavailable("The footage store could not be reached.") from exc


async def in_thread(func: Callable[[], T]) -> T:
    """Run one blocking boto3 call in a worker thread, translating its errors."""
    with translated():
        return await anyio.to_thread.run_sync(func)


def refused(exc: StorageUnavailable) -> bool:
    """Whether S3 refused a version's deletion itself (a WORM-protected version: AccessDenied)."""
    cause = exc.__cause__
    if not isinstance(cause, ClientError):
        return False
    return str(cause.response.get("Error", {}).get("Code", "")) in _LOCKED_CODES
