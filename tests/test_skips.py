"""tests/support/skips.py: under CI=true a skip fails the run, but for the two kinds it keeps."""

from __future__ import annotations

import pytest

SUITE = """
import pytest
from tests.support.skips import skip_unconfigured, skip_unsupported

pytestmark = pytest.mark.filterwarnings("ignore")

def test_no_tool():
    pytest.skip("nginx is not installed")

@pytest.mark.skipif(True, reason="curl is not installed")
def test_no_tool_by_marker():
    pass

@pytest.fixture
def browser():
    pytest.skip("no chromium")

def test_no_tool_in_a_fixture(browser):
    pass

def test_no_database():
    skip_unconfigured("FOOTGW_TEST_DATABASE_URL is not set")

def test_no_kernel_feature():
    skip_unsupported("this kernel has no openat2")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_runs():
    pass
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_suite=SUITE)
    return pytester.runpytest("-p", "tests.support.skips", "-rA")


def test_under_ci_a_missing_tool_fails_and_says_why(pytester, monkeypatch) -> None:
    result = run(pytester, monkeypatch, "true")
    # A skip in setup (a marker, a fixture) becomes an error; one in the test, a failure.
    result.assert_outcomes(failed=1, errors=2, skipped=2, xfailed=1, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*skipped under CI=true*nginx is not installed*"])
    result.stdout.fnmatch_lines(["*skipped under CI=true*curl is not installed*"])
    result.stdout.fnmatch_lines(["*skipped under CI=true*no chromium*"])
    result.stdout.fnmatch_lines(["SKIPPED*FOOTGW_TEST_DATABASE_URL is not set*"])
    result.stdout.fnmatch_lines(["SKIPPED*this kernel has no openat2*"])


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_developer_without_the_tool_gets_a_skip(pytester, monkeypatch, ci) -> None:
    result = run(pytester, monkeypatch, ci)
    result.assert_outcomes(skipped=5, xfailed=1, passed=1)
    result.stdout.fnmatch_lines(["SKIPPED*nginx is not installed*"])
