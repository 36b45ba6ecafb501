"""A real local webhook receiver that verifies Standard Webhooks signatures (standardwebhooks).

A ThreadingHTTPServer on an ephemeral port. Every POST is checked with `Webhook.verify` against
the secret it was given: a verified message is recorded (by its `webhook-id`, so a test sees a
duplicate) and answered `status`; a message that does not verify is answered 401 and counted
as rejected. `fail_first` answers 500 to that many verified posts first; `hang` holds a
verified post until `release` is set (or for `hang_seconds`), for timeouts.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    """A fresh `whsec_` secret of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookReceiver:
    """Verifies, records and answers webhook posts; use as a context manager."""

    def __init__(
        self,
        secret: str,
        *,
        status: int = 204,
        fail_first: int = 0,
        hang: Callable[[dict[str, Any]], bool] | None = None,
        hang_seconds: float = 30.0,
    ) -> None:
        self.webhook = Webhook(secret)
        self.status = status
        self.fail_first = fail_first
        self.hang = hang
        self.hang_seconds = hang_seconds
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []  # every verified post, in arrival order
        self.answered: list[tuple[str, int]] = []  # (webhook-id, status) per verified post
        self.rejected: list[str] = []  # why each post that did not verify was refused
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                status = receiver.handle(raw, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, raw: bytes, headers: dict[str, str]) -> int:
        try:
            body = self.webhook.verify(raw, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            return 401
        message = {"id": headers.get("webhook-id"), "headers": headers, "body": body}
        if self.hang is not None and self.hang(message):
            self.release.wait(timeout=self.hang_seconds)
        with self.lock:
            self.received.append(message)
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
            status = 500 if failing else self.status
            message["status"] = status
            self.answered.append((str(message["id"]), status))
        return status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted(self) -> list[dict[str, Any]]:
        """Verified posts that were answered 2xx (what the sender counts as delivered)."""
        with self.lock:
            return [m for m in self.received if 200 <= m["status"] < 300]

    def accepted_ids(self) -> Counter[str]:
        """How many times each webhook-id was accepted (all 1: sent once)."""
        with self.lock:
            return Counter(i for i, status in self.answered if 200 <= status < 300)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.accepted() if m["body"].get("type") == kind]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
