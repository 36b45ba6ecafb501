"""Prometheus metrics, on a registry per app (no global registry: tests build many apps).

Labels are small closed sets (route prefix, status, decision, reason, rule, severity), never a
principal, customer, camera or clip: one series per person would grow without bound and would
copy the audit log into a system that was never meant to hold it (docs/security.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The gateway's counters and histograms, and the one place each is counted from."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "footgw_http_requests",
            "HTTP responses sent",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "footgw_http_request_seconds",
            "Time to the response's first byte",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.decisions = Counter(
            "footgw_access_decisions",
            "Footage access decisions committed to the audit log",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "footgw_footage_bytes_sent",
            "Footage bytes the gateway streamed itself (not redirects or nginx hand-offs)",
            registry=self.registry,
        )
        self.unauthenticated_limited = Counter(
            "footgw_unauthenticated_rate_limited",
            "Unauthenticated footage requests refused 429 (not audited one by one)",
            registry=self.registry,
        )
        self.flags = Counter(
            "footgw_flags_raised",
            "Detection flags raised (a flag extended with more evidence counts once)",
            ["rule", "severity"],
            registry=self.registry,
        )

        # The outbox (contract §14): by destination, `customer` or `alert`.
        self.notifications_delivered = Counter(
            "footgw_notifications_delivered",
            "Notifications and alerts a webhook accepted (2xx)",
            ["destination"],
            registry=self.registry,
        )
        self.notification_attempts_failed = Counter(
            "footgw_notification_attempts_failed",
            "Delivery attempts that failed (an error, a timeout or a non-2xx answer)",
            ["destination"],
            registry=self.registry,
        )
        self.notifications_given_up = Counter(
            "footgw_notifications_given_up",
            "Notifications given up after their last attempt (notification.failed)",
            ["destination"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "footgw_outbox_backlog",
            "Notifications waiting to be delivered (the whole database, as this replica saw it)",
            ["destination"],
            registry=self.registry,
        )
        self.outbox_oldest_seconds = Gauge(
            "footgw_outbox_oldest_pending_seconds",
            "Age of the oldest notification still waiting to be delivered (0: none)",
            ["destination"],
            registry=self.registry,
        )

    def notification_delivered(self, destination: str) -> None:
        self.notifications_delivered.labels(destination).inc()

    def notification_attempt_failed(self, destination: str) -> None:
        self.notification_attempts_failed.labels(destination).inc()

    def notification_given_up(self, destination: str) -> None:
        self.notifications_given_up.labels(destination).inc()

    def outbox_measured(self, destination: str, backlog: int, oldest_seconds: float) -> None:
        """The worker's latest look at the outbox."""
        self.outbox_backlog.labels(destination).set(backlog)
        self.outbox_oldest_seconds.labels(destination).set(oldest_seconds)

    def decision_committed(self, decision: str, reason: str) -> None:
        """One access.decision event is durable: `allow` or `deny`, and why."""
        self.decisions.labels(decision, reason).inc()

    def footage_sent(self, size: int) -> None:
        """A streamed response ended, complete or not, after sending `size` bytes of footage."""
        self.bytes_sent.inc(size)

    def flag_raised(self, rule: str, severity: str) -> None:
        """A new flag was stored."""
        self.flags.labels(rule, severity).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
