"""High-severity alerts to FOOTGW_ALERT_WEBHOOK: a small local receiver on an ephemeral port.

The receiver is a real HTTP server in a thread. A failing receiver is retried and logged; a
receiver that hangs never holds up the request that raised the flag (the test proves it by
getting the response while the receiver is still holding the webhook's connection).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.types import Zone
from tests.support.server import wait_for
from tests.test_detection_http import ALWAYS_WORKING, clip_at
from tests.test_detection_http import running as running  # the fixture, shared

FAST_ALERTS = (
    ALWAYS_WORKING
    + """
[alerts]
timeout_seconds = 5
retries = 2
backoff_seconds = 0.01
"""
)


class Receiver:
    """Records every POST; answers `status`, after `hold` is set when `hang` is on."""

    def __init__(self, status: int = 204, hang: bool = False) -> None:
        self.status = status
        self.hang = hang
        self.hold = threading.Event()
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.arrived.set()
                if receiver.hang:
                    receiver.hold.wait(timeout=30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        made.append(Receiver(**kw).__enter__())
        return made[-1]

    yield make
    for r in made:
        r.__exit__()


def break_glass(live: Any) -> Any:
    """A break-glass view: always a high flag (contract §8)."""
    clip = clip_at(0)
    live.env.put_clip("c1", "cam", clip, b"x")
    live.env.set_zone("c1", "cam", Zone.OUTDOOR)
    headers = {
        "Authorization": f"Bearer {live.env.token('lee', 'trust_safety', ttl=600)}",
        "X-Access-Purpose": "emergency",
        "X-Access-Justification": "INC-7 fire",
    }
    return live.client.get(f"/v1/footage/c1/cam/{clip}", headers=headers)


def test_a_high_flag_is_posted_to_the_webhook_and_logged(running, receiver_factory):
    receiver = receiver_factory()
    live = running(FAST_ALERTS, FOOTGW_ALERT_WEBHOOK=receiver.url)
    with capture_logs() as logs:
        r = break_glass(live)
        assert r.status_code == 200
        assert receiver.arrived.wait(timeout=10)
        wait_for(lambda: any(e["event"] == "alert_delivered" for e in logs))
    [body] = receiver.bodies
    assert body["alert"] == "flag.raised"
    assert body["flag"]["rule"] == "break_glass" and body["flag"]["severity"] == "high"
    assert body["flag"]["principal"] == "lee"
    assert body["flag"]["event_ids"] == [r.headers["x-audit-event-id"]]
    warnings = [e for e in logs if e["event"] == "detection_alert"]
    assert warnings and warnings[0]["log_level"] == "warning"


def test_a_failing_webhook_is_retried_then_logged(running, receiver_factory):
    receiver = receiver_factory(status=500)
    live = running(FAST_ALERTS, FOOTGW_ALERT_WEBHOOK=receiver.url)
    with capture_logs() as logs:
        assert break_glass(live).status_code == 200
        wait_for(lambda: any(e["event"] == "alert_not_delivered" for e in logs))
    assert len(receiver.bodies) == 3  # the first attempt and two retries
    failed = [e for e in logs if e["event"] == "alert_attempt_failed"]
    assert [e["attempt"] for e in failed] == [1, 2, 3] and failed[0]["error"] == "HTTP 500"


def test_a_hanging_webhook_never_blocks_the_request(running, receiver_factory):
    receiver = receiver_factory(hang=True)
    live = running(FAST_ALERTS, FOOTGW_ALERT_WEBHOOK=receiver.url)
    r = break_glass(live)
    # The response is here while the receiver still holds the webhook's request open.
    assert r.status_code == 200
    assert receiver.arrived.wait(timeout=10) and not receiver.hold.is_set()
    again = live.client.get("/healthz")
    assert again.status_code == 200
    receiver.hold.set()


def test_an_unreachable_webhook_is_logged_and_the_view_served(running):
    live = running(FAST_ALERTS, FOOTGW_ALERT_WEBHOOK="http://127.0.0.1:9/nothing-listens")
    with capture_logs() as logs:
        assert break_glass(live).status_code == 200
        wait_for(lambda: any(e["event"] == "alert_not_delivered" for e in logs))
