"""Prometheus metrics, on a registry per app (no global registry: tests build many apps).

Labels are small closed sets (route prefix, status, decision, reason, rule, severity), never a
principal, customer, camera or clip: one series per person would grow without bound and would
copy the audit log into a system that was never meant to hold it (docs/security.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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
