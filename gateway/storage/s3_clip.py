"""One S3 object opened for a response, and the streaming of a GetObject body to the client.

An opened clip reads exactly the object its headers describe: a body fetched by open() itself
(a plain GET of the whole clip: one request, no HeadObject), or a ranged GET If-Match the ETag
that open() saw, which S3 answers 412 once the object was replaced.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import anyio

from gateway.storage.base import CHUNK_SIZE, ObjectInfo
from gateway.storage.readahead import ReadAhead
from gateway.storage.s3_errors import translated

if TYPE_CHECKING:
    from botocore.response import StreamingBody

# Chunks read ahead of the client per stream (gateway/storage/readahead.py): at most this many
# CHUNK_SIZE chunks wait in memory per S3 stream, whatever the clip's size.
READ_AHEAD_CHUNKS = 4


def object_info(response: Mapping[str, Any]) -> ObjectInfo:
    """Size, ETag and modification time from a HeadObject or a whole GetObject response."""
    return ObjectInfo(
        size=response["ContentLength"],
        etag=response["ETag"],
        last_modified=response["LastModified"],
    )


async def stream_body(
    body: StreamingBody, length: int, readers: Executor
) -> AsyncGenerator[bytes, None]:
    """`length` bytes of a response body as chunks of at most CHUNK_SIZE, read ahead in
    `readers`; the body is closed at the end, on an error, or when the consumer stops early."""
    ahead = ReadAhead(body.read, length, readers, chunk_size=CHUNK_SIZE, depth=READ_AHEAD_CHUNKS)
    try:
        while True:
            with translated():
                chunk = await ahead.next_chunk()
            if chunk is None:
                break
            yield chunk
    finally:
        # On exhaustion, error, or aclose() after a client disconnect: wait for a read still
        # running in its thread (bounded by the read timeout), then give the socket back.
        with anyio.CancelScope(shield=True):
            await ahead.settle()
        body.close()


RangeReader = Callable[[str, int, int, str], AsyncIterator[bytes]]


class S3Clip:
    """One object as open() saw it (OpenClip); it holds a connection only for a body that
    open() fetched and no read has taken yet."""

    def __init__(
        self,
        key: str,
        info: ObjectInfo,
        read_range: RangeReader,
        readers: Executor,
        body: StreamingBody | None = None,
    ) -> None:
        self.key = key
        self.info = info
        self._read_range = read_range  # S3Storage.get_range
        self._readers = readers
        self._body = body  # the whole object, fetched by open(); None once taken or closed

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The body open() fetched when this is the whole of it; otherwise a ranged GET that S3
        answers only while the object is still the one opened: else 412, so the bytes never
        come from a replacement the headers do not describe."""
        body, self._body = self._body, None
        if body is not None:
            if start == 0 and end == self.info.size - 1:
                return stream_body(body, self.info.size, self._readers)
            body.close()  # a part only: S3 sends just that part, never the whole clip for it
        return self._read_range(self.key, start, end, self.info.etag)

    async def close(self) -> None:
        """Close a fetched body no read took (a HEAD, a 304, an audit failure); idempotent."""
        body, self._body = self._body, None
        if body is not None:
            body.close()
