"""Shared fixtures. Fixture modules live in tests/support/ and are loaded as plugins."""

from __future__ import annotations

import structlog

pytest_plugins = [
    "tests.support.s3",
    "tests.support.server",
    "tests.support.browser",
    "tests.support.skips",
    "pytester",  # tests/test_skips.py runs small suites through that plugin
]

# In-process gateways log every audit event; in tests those lines are noise on the terminal
# (often written by a server thread after the test that caused them has finished). Render them
# and drop them: `structlog.testing.capture_logs()` still sees every entry, and subprocess
# gateways configure their own JSON logging, which their tests read.
structlog.configure(
    processors=[structlog.contextvars.merge_contextvars, structlog.processors.JSONRenderer()],
    logger_factory=structlog.ReturnLoggerFactory(),
)
