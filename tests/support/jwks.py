"""A real JWKS endpoint on an ephemeral local port, whose behaviour a test can change at will."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["serve", "fail", "hang"]


class JwksServer:
    """Serves `document` at /jwks.json; `mode` makes it answer 500 or hang instead."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.mode: Mode = "serve"
        self.hits = 0
        self.release = threading.Event()  # set to free hanging handlers
        self.hanging = threading.Event()  # set once a request is being held
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/jwks.json"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                if owner.mode == "hang":
                    owner.hanging.set()
                    owner.release.wait(timeout=30)
                    return
                if owner.mode == "fail":
                    self.send_error(500)
                    return
                body = json.dumps(owner.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler


@contextmanager
def serve_jwks(document: dict[str, Any]) -> Iterator[JwksServer]:
    """Run a JwksServer for the duration of the block."""
    server = JwksServer(document)
    server.start()
    try:
        yield server
    finally:
        server.stop()
