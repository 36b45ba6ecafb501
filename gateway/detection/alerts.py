"""Alerts for high-severity flags and automatic suspensions: a warning log line, and a webhook.

The webhook (FOOTGW_ALERT_WEBHOOK) is a JSON POST sent from a background task with short
timeouts and a few retries with backoff, so a slow or dead receiver never holds up the request
that raised the flag; every failure is logged. On shutdown the sender waits briefly for what
is in flight, then gives up (and says so).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from gateway.background import spawn
from gateway.detection.config import AlertConfig

log = structlog.get_logger("gateway.detection.alerts")

CLOSE_GRACE_SECONDS = 5.0


class AlertSender:
    """Logs each alert as a warning and POSTs it to the webhook, if one is configured."""

    def __init__(
        self,
        webhook: str | None,
        config: AlertConfig,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.webhook = webhook
        self.config = config
        self._client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        """Log now; deliver in the background. Never raises, never waits."""
        log.warning("detection_alert", alert=kind, **payload)
        if not self.webhook:
            return
        task = spawn(self._deliver(kind, payload), name="alert-delivery")
        self._tasks.add(task)  # hold a reference, or the task may be collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, kind: str, payload: dict[str, Any]) -> None:
        assert self.webhook is not None
        body = {"alert": kind, **payload}
        attempts = self.config.retries + 1
        for attempt in range(1, attempts + 1):
            error = await self._post(body)
            if error is None:
                log.info("alert_delivered", alert=kind, attempt=attempt)
                return
            log.warning("alert_attempt_failed", alert=kind, attempt=attempt, error=error)
            if attempt < attempts:
                await asyncio.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
        log.error("alert_not_delivered", alert=kind, attempts=attempts, webhook=self.webhook)

    async def _post(self, body: dict[str, Any]) -> str | None:
        """One attempt: None on a 2xx answer, else what went wrong."""
        assert self.webhook is not None
        try:
            response = await self._http().post(self.webhook, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_seconds), follow_redirects=False
            )
        return self._client

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the alerts in flight (bounded), then cancel whatever is left."""
        pending = set(self._tasks)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            log.error("alerts_abandoned", count=len(late))
            await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        """Drain, then close the HTTP client."""
        await self.drain(CLOSE_GRACE_SECONDS)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
