"""Background tasks log without the request id of the request that happened to start them."""

from __future__ import annotations

import ast
import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from structlog.testing import LogCapture

from gateway.background import spawn
from tests.support.server import wait_for
from tests.test_detection_http import running as running  # the fixture, shared
from tests.test_detection_webhook import FAST_ALERTS, break_glass

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
OTHER: contextvars.ContextVar[str] = contextvars.ContextVar("other", default="unset")


@contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """capture_logs(), keeping merge_contextvars: the processor that would leak the id."""
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


async def _spawned_during_a_request() -> tuple[asyncio.Task[None], asyncio.Task[None]]:
    async def later(event: str) -> None:
        await asyncio.sleep(0.01)  # the request below has finished by now
        structlog.get_logger().info(event, other=OTHER.get())

    OTHER.set("kept")
    with structlog.contextvars.bound_contextvars(request_id="req-finished-01"):
        structlog.get_logger().info("in_request")
        plain = asyncio.get_running_loop().create_task(later("plain_task"))
        detached = spawn(later("spawned_task"))
    return plain, detached


def test_a_spawned_task_drops_the_request_id_and_keeps_other_context():
    async def main() -> None:
        plain, detached = await _spawned_during_a_request()
        await asyncio.gather(plain, detached)

    with captured() as logs:
        asyncio.run(main())
    by_event = {entry["event"]: entry for entry in logs}
    assert by_event["in_request"]["request_id"] == "req-finished-01"
    # What asyncio does by itself, and why gateway.background exists:
    assert by_event["plain_task"]["request_id"] == "req-finished-01"
    assert "request_id" not in by_event["spawned_task"]
    assert by_event["spawned_task"]["other"] == "kept"


def test_alert_delivery_after_a_request_does_not_log_its_id(running):
    live = running(FAST_ALERTS, FOOTGW_ALERT_WEBHOOK="http://127.0.0.1:9/nothing-listens")
    live.client.headers["X-Request-ID"] = "req-break-glass-01"
    with captured() as logs:
        assert break_glass(live).status_code == 200
        wait_for(lambda: any(e["event"] == "alert_not_delivered" for e in logs))
    [alert] = [e for e in logs if e["event"] == "detection_alert"]
    # Logged while serving: the request's ids belong (the server's own, and the caller's beside it)
    assert alert["client_request_id"] == "req-break-glass-01"
    assert alert["request_id"] != "req-break-glass-01"
    background = [e for e in logs if e["event"] in {"alert_attempt_failed", "alert_not_delivered"}]
    assert background
    assert all("request_id" not in e and "client_request_id" not in e for e in background)


def test_every_task_in_gateway_is_spawned_detached():
    """asyncio's create_task copies the caller's context: only gateway.background may call it."""
    offenders = []
    for path in GATEWAY.rglob("*.py"):
        if path.name == "background.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"create_task", "ensure_future"}:
                offenders.append(f"{path.relative_to(GATEWAY)}:{node.lineno}")
    assert offenders == []
