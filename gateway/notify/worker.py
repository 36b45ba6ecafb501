"""The delivery worker: claim due outbox rows, post them signed, settle them, retry with backoff.

One worker per gateway process, on the event loop. It never holds up a request: requests only
insert rows (outbox.py); the worker posts them later. Each post is its own task with its own
timeout, so a hanging receiver delays only its own rows. A failed attempt is retried after an
exponential backoff with jitter, capped; after the route's last attempt the row is given up.
Settling a row and its audit event (`notification.delivered` or, once, at the final give-up,
`notification.failed`) commit together; a failed attempt that will be retried is a log line and
a metric, not an audit event, so a dead receiver cannot flood the audit log (contract §14).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import httpx
import structlog

from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.background import spawn
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.notify.outbox import Destination, OutboxStore, Pending
from gateway.notify.signing import Signer
from gateway.types import EventType, parse_ts

log = structlog.get_logger("gateway.notify")

ACTOR = "gateway:notify"
MAX_IN_FLIGHT = 32
SWEEP_EVERY_POLLS = 10  # the expiry sweep and unsendable rows: every this many rounds
CLOSE_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    """How rows of one destination are posted: where, how long, how often."""

    url: str | None
    max_attempts: int
    timeout: float
    backoff: float  # the first retry's delay; doubled per failure
    backoff_max: float
    log_as: str  # the log lines' prefix: `notification` or `alert`


def backoff_delay(
    failures: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """The wait after the `failures`-th failed attempt: base·2^(failures-1), capped, with
    "equal jitter" (half fixed, half random) so replicas that failed together spread out."""
    delay = min(cap, base * 2.0 ** min(failures - 1, 62))
    return float(delay / 2 + rand() * delay / 2)


def body_of(pending: Pending) -> dict[str, Any]:
    """What is posted. Alerts keep the shape FOOTGW_ALERT_WEBHOOK always had (contract §14)."""
    if pending.destination is Destination.ALERT:
        return {"alert": pending.kind, **pending.payload}
    return {
        "id": pending.id,
        "type": pending.kind,
        "timestamp": pending.created_at,
        "data": {"customer_id": pending.customer_id, **pending.payload},
    }


def worker_id() -> str:
    """This process's name on the rows it claims (host, pid, and a nonce for pid reuse)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class Deliverer:
    """Posts the outbox's due rows to their routes; start() on the loop, close() to stop."""

    def __init__(
        self,
        outbox: OutboxStore,
        audit: AuditLog,
        metrics: Metrics,
        signer: Signer,
        routes: Mapping[Destination, Route],
        *,
        poll_seconds: float,
        expiry_warning_seconds: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.outbox = outbox
        self.audit = audit
        self.metrics = metrics
        self.signer = signer
        self.routes = routes
        self.poll = poll_seconds
        self.expiry_warning = expiry_warning_seconds
        self.clock = clock
        self.worker = worker_id()
        longest = max(route.timeout for route in routes.values())
        # A claim outlives any one attempt (bounded below), so no live worker's row is taken
        # over; a killed worker's claims lapse after it and the rows are sent by another.
        self.lease = timedelta(seconds=2 * longest + 1)
        self.status: dict[str, Any] = {  # /readyz's detail, as of the last round
            "backlog": 0,
            "oldest_pending_seconds": 0.0,
            "last_error": None,
            "webhook_configured": bool(routes[Destination.CUSTOMER].url),
        }
        self._client = client
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self._rounds = 0

    async def start(self) -> None:
        """Start the loop (and take whatever earlier runs left due)."""
        if self._task is None:
            self._task = spawn(self._run(), name="notify-worker")

    def kick(self) -> None:
        """Look at the outbox now (a batch with notifications just committed)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._tick()
            except Exception as exc:  # the database may be down: try again next round
                log.error("notify_round_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            self._wake.clear()

    async def _tick(self) -> None:
        now = self.clock()
        if self._rounds % SWEEP_EVERY_POLLS == 0:
            await self._sweep(now)
        self._rounds += 1
        await self._claim_and_send(now)
        await self._measure(now)

    async def _sweep(self, now: datetime) -> None:
        """Warn of grants about to expire; settle rows whose destination has no webhook."""
        if self.expiry_warning > 0:
            ahead = timedelta(seconds=self.expiry_warning)
            await anyio.to_thread.run_sync(self.outbox.warn_expiring, now, ahead)
        silent = {str(d) for d, route in self.routes.items() if not route.url}
        await anyio.to_thread.run_sync(self.outbox.settle_unsendable, silent, now)

    async def _claim_and_send(self, now: datetime) -> None:
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0 or not await anyio.to_thread.run_sync(self.outbox.any_due, now):
            return
        sendable = {str(d) for d, route in self.routes.items() if route.url}
        claimed = await anyio.to_thread.run_sync(
            self.outbox.claim, self.worker, now, self.lease, free, sendable
        )
        for pending in claimed:
            task = spawn(self._deliver(pending), name="notify-delivery")
            self._in_flight[pending.id] = task
            task.add_done_callback(self._finished(pending.id))

    def _finished(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(key, None)

        return forget

    async def _measure(self, now: datetime) -> None:
        backlog = await anyio.to_thread.run_sync(self.outbox.backlog)
        total, oldest_age = 0, 0.0
        for destination, waiting in backlog.items():
            age = (now - parse_ts(waiting.oldest)).total_seconds() if waiting.oldest else 0.0
            self.metrics.outbox_measured(destination, waiting.count, max(age, 0.0))
            total += waiting.count
            oldest_age = max(oldest_age, age)
        last_error = await anyio.to_thread.run_sync(self.outbox.last_error) if total else None
        self.status = {
            "backlog": total,
            "oldest_pending_seconds": round(max(oldest_age, 0.0), 3),
            "last_error": last_error,
            "webhook_configured": bool(self.routes[Destination.CUSTOMER].url),
        }

    async def _deliver(self, pending: Pending) -> None:
        """One attempt and its outcome; whatever goes wrong, the claim lapses and it is retried."""
        try:
            await self._attempt(pending)
        except Exception as exc:
            log.error("notify_delivery_failed", id=pending.id, error=f"{type(exc).__name__}: {exc}")

    async def _attempt(self, pending: Pending) -> None:
        route = self.routes[pending.destination]
        attempt = pending.attempts + 1
        fields = {route.log_as: pending.kind, "id": pending.id, "attempt": attempt}
        error = await self._post(route, pending)
        if error is None:
            self.metrics.notification_delivered(pending.destination)
            log.info(f"{route.log_as}_delivered", **fields)
            await self._settle(pending, EventType.NOTIFICATION_DELIVERED, None)
            return
        self.metrics.notification_attempt_failed(pending.destination)
        log.warning(f"{route.log_as}_attempt_failed", error=error, **fields)
        if attempt >= route.max_attempts:
            self.metrics.notification_given_up(pending.destination)
            log.error(
                f"{route.log_as}_not_delivered", attempts=attempt, webhook=route.url, **fields
            )
            await self._settle(pending, EventType.NOTIFICATION_FAILED, error)
            return
        delay = backoff_delay(attempt, route.backoff, route.backoff_max)
        next_at = self.clock() + timedelta(seconds=delay)
        try:
            await anyio.to_thread.run_sync(
                self.outbox.retry_later, pending, self.worker, error, next_at
            )
        except Exception as exc:  # the claim lapses and the row is tried again anyway
            log.error("notify_retry_not_recorded", id=pending.id, error=str(exc))
            return
        asyncio.get_running_loop().call_later(delay, self.kick)

    async def _post(self, route: Route, pending: Pending) -> str | None:
        """One attempt: None on a 2xx answer, else what went wrong. Never longer than timeout."""
        assert route.url is not None
        body = json.dumps(body_of(pending), sort_keys=True, separators=(",", ":"))
        headers = self.signer.headers(pending.id, body, self.clock())
        try:
            # httpx's timeout is per phase; the outer bound caps the whole attempt (a receiver
            # dripping bytes of an answer must not hold the row past its claim).
            response = await asyncio.wait_for(
                self._http().post(route.url, content=body, headers=headers, timeout=route.timeout),
                timeout=route.timeout + 1,
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}".rstrip(": ")
        if response.is_success:
            return None
        return f"HTTP {response.status_code}"

    async def _settle(self, pending: Pending, outcome: EventType, error: str | None) -> None:
        """Mark the row delivered or given up, and append its audit event, in one transaction."""
        now = self.clock()

        def change(conn: Any) -> bool:
            if outcome is EventType.NOTIFICATION_DELIVERED:
                return self.outbox.mark_delivered(conn, pending, self.worker, now)
            return self.outbox.mark_given_up(conn, pending, self.worker, error or "", now)

        def event_of(still_ours: bool) -> Event | None:
            return _event(pending, outcome, error) if still_ours else None

        try:
            await self.audit.commit_with(change, event_of)
        except GatewayError as exc:  # not recorded: the claim lapses and the row is sent again
            log.error("notify_outcome_not_recorded", id=pending.id, error=exc.message)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def close(self) -> None:
        """Stop claiming; give the posts in flight a moment, then cancel (their claims lapse)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        pending = set(self._in_flight.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                log.warning("notify_deliveries_abandoned", count=len(late))
                await asyncio.gather(*late, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _event(pending: Pending, outcome: EventType, error: str | None) -> Event:
    detail: dict[str, Any] = {
        "notification_id": pending.id,
        "kind": pending.kind,
        "destination": str(pending.destination),
        "attempts": pending.attempts + 1,
    }
    if error is not None:
        detail["error"] = error[:500]
    return new_event(
        outcome,
        principal=ACTOR,
        action=str(outcome),
        customer_id=pending.customer_id,
        detail=detail,
    )
