"""Prometheus metrics, on a registry per app (no global registry: tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """The gateway's counters and histograms."""

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
            "Footage access decisions",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "footgw_footage_bytes_sent", "Footage bytes streamed", registry=self.registry
        )
        self.flags = Counter(
            "footgw_flags_raised",
            "Detection flags raised",
            ["rule", "severity"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
