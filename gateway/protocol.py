"""uvicorn's httptools protocol with the server's limits on request heads (docs/security.md).

httptools (llhttp, in C) parses a request in a few microseconds where h11 takes tens, which
matters when a player sends dozens of small range requests a second. llhttp itself limits
neither the size of a request's head nor how long it may take to arrive, so both are added
here, exactly as the contract says (§5): a head larger than `max_header_bytes` is refused 431,
a head not complete within `header_timeout` of the request's start (or of the connection's,
or of the previous response's end on a kept-alive connection) is refused 408, and in both
cases the connection is closed. The deadline is not reset by each byte that drips in, which
is what a slowloris counts on.

It also serves the ASGI zero-copy send extension (gateway/zerocopy.py): a large clip leaves by
sendfile, as nginx sends it, instead of through Python's buffers.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.zerocopy import advertise, serve_zerocopy

log = structlog.get_logger("gateway.server")

HEAD_END = b"\r\n\r\n"


def bounded_protocol(max_header_bytes: int, header_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn runs (its `http=` setting), with these limits."""

    class Bounded(BoundedHttpTools):
        pass

    Bounded.max_header_bytes = max_header_bytes
    Bounded.header_timeout = header_timeout
    return Bounded


class BoundedHttpTools(HttpToolsProtocol):
    """HttpToolsProtocol that counts each request head's bytes and times its arrival."""

    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The bytes of the head being read (at most a limit's worth plus the terminator), or
        # None once its last header arrived and until the response to it is complete.
        self._head: bytearray | None = bytearray()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is not None and len(head) + len(data) > self.max_header_bytes:
            head += data[: self.max_header_bytes + len(HEAD_END) - len(head)]
            if HEAD_END not in head:
                self._refuse(431, "request_headers_too_large", "The request headers are too large.")
                return
        elif head is not None:
            head += data
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head = None
        self._disarm()
        advertise(self.scope, self.transport)  # type: ignore[arg-type]
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:
            serve_zerocopy(self.cycle)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._head is None:
            self._head = bytearray()  # the next request's head gets the same limits
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if self._head is None or self.transport.is_closing():
            return
        if self._head:  # a request was started: say why it ends
            self._refuse(408, "request_timeout", "The request headers came too slowly.")
        else:
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """A contract error response written before any request exists, then close (§5)."""
        self._disarm()
        self._unset_keepalive_if_required()
        self._head = None
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        phrase = HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        log.warning("request_refused_by_server", status=status, code=code, client=self.client)
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()
