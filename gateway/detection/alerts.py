"""Alerts for high-severity flags and automatic suspensions: a warning log line, and a webhook.

The webhook (FOOTGW_ALERT_WEBHOOK) is posted through the notification outbox (contract §14):
the alert's row commits with the `flag.raised` or `principal.suspended` event that causes it,
and the outbox's worker posts it from the background with the `[alerts]` timeout, retries and
backoff of detection.toml, signed like every notification (when FOOTGW_NOTIFY_SECRET is set).
So a slow or dead receiver never holds up the request that raised the flag, an alert survives
a restart, and with several replicas it is posted once. The body keeps its shape:
`{"alert": kind, ...}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import structlog
from sqlalchemy.engine import Engine

from gateway.audit.companions import Companion
from gateway.db import begin_write
from gateway.notify.outbox import Destination, companion, insert_rows

log = structlog.get_logger("gateway.detection.alerts")


class AlertSender:
    """Logs each alert as a warning and gives the outbox row that posts it, if a webhook is set."""

    def __init__(self, webhook: str | None, engine: Engine) -> None:
        self.webhook = webhook
        self.engine = engine

    def rows(self, kind: str, payload: dict[str, Any]) -> Sequence[Companion]:
        """Log now; the row to commit with the alert's audit event (none without a webhook)."""
        log.warning("detection_alert", alert=kind, **payload)
        if not self.webhook:
            return ()
        return (companion(Destination.ALERT, None, kind, payload),)

    async def unrecorded(self, rows: Sequence[Companion]) -> None:
        """The alert's event could not be written: queue its rows alone, so it is still sent."""
        if not rows:
            return

        def insert() -> None:
            with begin_write(self.engine) as conn:
                insert_rows(conn, list(rows))

        try:
            await anyio.to_thread.run_sync(insert)
        except Exception as exc:  # the database is down: the warning line is what is left
            log.error("alert_not_queued", error=str(exc), count=len(rows))
