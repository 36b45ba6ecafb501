"""Structured logging: a batch of records rendered as log.info would, written in one go."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from gateway.logging_setup import _utc_timestamp, log_each, render_lines, write_lines
from gateway.types import parse_ts

RECORDS = [{"seq": 1, "who": "sam"}, {"seq": 2, "who": "caf\u00e9\u2028"}, {"seq": 3, "who": None}]


@pytest.fixture
def configure() -> Iterator[Any]:
    """structlog.configure for one test, then the suite's own configuration back."""
    saved = structlog.get_config()
    yield structlog.configure
    structlog.configure(**saved)


def drop_seq_2(_logger: Any, _method: str, event_dict: Any) -> Any:
    if event_dict.get("seq") == 2:
        raise structlog.DropEvent
    return event_dict


def test_each_record_renders_exactly_as_log_info_would(configure):
    configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    expected = [structlog.get_logger().info("audit_event", **r) for r in RECORDS]
    assert render_lines("audit_event", RECORDS) == expected


def test_a_dropped_record_has_no_line_and_a_level_above_info_has_none(configure):
    configure(
        processors=[drop_seq_2, structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    assert [json.loads(line)["seq"] for line in render_lines("e", RECORDS) or []] == [1, 3]
    configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    assert render_lines("e", RECORDS) == []


class Counting:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_the_lines_leave_in_one_write(configure):
    out = Counting()
    configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
    )
    log_each("audit_event", RECORDS)
    assert len([w for w in out.writes if w.strip()]) == 1
    assert [json.loads(line)["seq"] for line in "".join(out.writes).splitlines()] == [1, 2, 3]
    before = len(out.writes)
    write_lines([])  # nothing to write: no write at all
    assert len(out.writes) == before


def test_a_chain_that_does_not_end_in_text_is_logged_the_ordinary_way(configure):
    out = Counting()
    configure(
        processors=[lambda _l, _m, d: json.dumps(d).encode()],
        logger_factory=structlog.BytesLoggerFactory(file=out),  # type: ignore[arg-type]
    )
    assert render_lines("e", RECORDS) is None
    log_each("e", RECORDS)
    assert len(out.writes) == 3


def test_the_timestamp_is_utc_iso_with_microseconds():
    stamp = _utc_timestamp(None, "info", {})["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert abs(parse_ts(stamp) - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_configured_logging_writes_a_batch_in_one_write(fmt: str) -> None:
    # Its own process: configure_logging() changes global state this suite relies on.
    script = textwrap.dedent(
        f"""
        import sys
        class Counting:
            def __init__(self, inner):
                self.inner, self.writes = inner, 0
            def write(self, text):
                self.writes += bool(text.strip())
                return self.inner.write(text)
            def flush(self):
                self.inner.flush()
            def isatty(self):
                return False
        sys.stderr = counting = Counting(sys.stderr)
        from gateway.logging_setup import configure_logging, log_each
        configure_logging({fmt!r})
        log_each("audit_event", [{{"seq": i, "who": "sam"}} for i in range(5)])
        print(counting.writes, file=sys.stdout)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1"
    lines = done.stderr.splitlines()
    assert len(lines) == 5 and all("audit_event" in line for line in lines)
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert [(r["seq"], r["level"]) for r in records] == [(i, "info") for i in range(5)]
        assert all(r["timestamp"].endswith("Z") for r in records)


def test_structlog_and_standard_logging_lines_never_share_a_line() -> None:
    # uvicorn's warnings come through the standard library, audit lines through structlog, from
    # different threads at once. A stream whose write() gives up the GIL between the two halves
    # print() writes (the text, then the newline) is what a loaded machine does now and then.
    script = textwrap.dedent(
        """
        import json, logging, sys, threading, time
        class Yielding:
            def __init__(self, inner):
                self.inner = inner
            def write(self, text):
                time.sleep(0)
                return self.inner.write(text)
            def flush(self):
                self.inner.flush()
            def isatty(self):
                return False
        sys.stderr = Yielding(sys.stderr)
        import structlog
        from gateway.logging_setup import configure_logging, log_each
        configure_logging("json")
        def audit():
            for i in range(300):
                log_each("audit_event", [{"seq": i}])
                structlog.get_logger().info("one", seq=i)
        def stdlib():
            for i in range(300):
                logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
        threads = [threading.Thread(target=audit), threading.Thread(target=stdlib)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 900
    events = [json.loads(line)["event"] for line in lines]  # each line one whole JSON record
    assert events.count("Invalid HTTP request received.") == 300
