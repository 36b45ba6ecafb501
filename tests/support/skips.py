"""Under CI, a test that skips fails the run: a green run must mean every test ran.

A developer without chromium, firefox-esr, Playwright, nginx or curl gets a skip that says
how to get the tool. CI (its runner exports CI=true) runs `make test`, which installs them,
so there a skip can only mean the run tested less than it claims: it is reported as a failure
with the skip's reason. CI keeps two kinds of skip, which no install can cure: the documented
contract for the servers the environment names (a test needing PostgreSQL or Redis skips
when FOOTGW_TEST_*_URL is unset; `.ci/run` sets both), through `skip_unconfigured`, and a
kernel that lacks a feature (openat2), through `skip_unsupported`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import NoReturn

import pytest

# Set on the skips CI keeps; plain skips otherwise (a subclass would show its class name in
# place of "Skipped" in pytest's summary).
KEPT_IN_CI = "footgw_kept_in_ci"


def _kept_skip(reason: str) -> NoReturn:
    skip = pytest.skip.Exception(reason)
    setattr(skip, KEPT_IN_CI, True)
    raise skip


def skip_unconfigured(reason: str) -> NoReturn:
    """Skip this test because a FOOTGW_TEST_* variable is unset (never a failure)."""
    _kept_skip(reason)


def skip_unsupported(reason: str) -> NoReturn:
    """Skip this test because the kernel lacks a feature it tests (never a failure)."""
    _kept_skip(reason)


def in_ci() -> bool:
    """Whether this run is CI's (GitHub-style runners and .ci/run's caller export CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return report
    if call.excinfo is not None and getattr(call.excinfo.value, KEPT_IN_CI, False):
        return report
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true, where it must run: {_reason(report)}\n"
        "(`make test` installs the browsers, nginx and curl; a developer without them gets a skip)"
    )
    return report
