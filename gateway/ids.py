"""Random UUIDs for request and event ids, drawn from the OS generator a page at a time.

uuid.uuid4() calls os.urandom(16) every time, and CPython releases the GIL around its
getrandom() call. On the event loop's thread under load (worker threads busy), it hands
the GIL to a worker thread every time, and getting it back costs far more than the call
itself. A footage request makes three ids (its request id and two audit events), so that was
a visible share of its budget (docs/benchmarks.md has the profile's figures). Here one call
fills a 4 KiB pool that serves 256 ids. The bytes are the
same os.urandom() bytes, so the ids are exactly as unpredictable. The pool is per process
(the pid is checked, so a fork never shares it) and guarded by a lock, since worker threads
make ids too.
"""

from __future__ import annotations

import os
import threading
import uuid

_POOL_BYTES = 4096
_UUID_BYTES = 16


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        self._pid = -1

    def take(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer) or self._pid != os.getpid():
                self._buffer, self._offset, self._pid = os.urandom(_POOL_BYTES), 0, os.getpid()
            start = self._offset
            self._offset += _UUID_BYTES
            return self._buffer[start : start + _UUID_BYTES]


_pool = _Pool()


# The version (4) and variant (binary 10) bits of a version 4 UUID, as uuid.UUID(version=4) sets
# them: the rest of the 128 bits are the random bytes as drawn (RFC 9562 §5.4).
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def random_uuid() -> uuid.UUID:
    """A version 4 UUID, as uuid.uuid4() would make it (RFC 9562 §5.4)."""
    return uuid.UUID(bytes=_pool.take(), version=4)


def random_hex() -> str:
    """A version 4 UUID as 32 hex digits (request ids)."""
    return _v4_hex(_pool.take())


def random_uuid_text() -> str:
    """str(random_uuid()) without building the UUID object (every audit event's id).

    uuid.UUID's constructor and __str__ are Python code with checks an id drawn here never
    needs: a share of each append's cost on the event loop (docs/benchmarks.md).
    """
    return _dashed(_v4_hex(_pool.take()))


def _v4_hex(raw: bytes) -> str:
    """The 32 hex digits of the version 4 UUID that uuid.UUID(bytes=raw, version=4) makes."""
    return f"{int.from_bytes(raw, 'big') & _CLEAR | _SET:032x}"


def _dashed(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
