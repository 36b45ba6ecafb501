"""Shared fixtures. Fixture modules live in tests/support/ and are loaded as plugins."""

from __future__ import annotations

pytest_plugins = [
    "tests.support.s3",
    "tests.support.server",
    "tests.support.browser",
]
