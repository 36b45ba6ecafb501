"""An acknowledged audit append is durable: it survives SIGKILL, and its WAL was fsynced first.

A child process (tests/support/audit_writer.py) appends through AuditLog, as requests do, and
writes one `ack <seq> <event_id>` line to stdout the moment each append returns. Whatever the
group commit batches and whichever thread commits them (gateway/audit/log.py), every acked
event must be in the database after the process is killed, and, traced with strace, every ack
must come after an fsync of the WAL that followed the previous ack: "committed" means
synchronous=FULL's fsync returned, not just that SQLite was handed the rows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.audit.events import new_event
from gateway.audit.store import AuditStore
from gateway.audit.verify import verify_rows
from gateway.db import create_db_engine
from gateway.types import EventType

REPO = Path(__file__).resolve().parent.parent
CHILD = [sys.executable, "-m", "tests.support.audit_writer"]
ACK = re.compile(rb"^ack (\d+) (\S+)$")


def strace_args(strace: str, out: Path) -> list[str]:
    """Every thread's fsync, fdatasync and write, with fd paths and wall-clock times."""
    calls = "trace=fdatasync,fsync,write"
    return [strace, "-f", "-qq", "-y", "-ttt", "-e", calls, "-e", "signal=none", "-o", str(out)]


def read_acks(out: bytes) -> list[tuple[int, str]]:
    acks = []
    for line in out.splitlines():
        match = ACK.match(line)
        assert match, line
        acks.append((int(match[1]), match[2].decode()))
    return acks


def stored(db: Path) -> tuple[dict[str, int], bool]:
    """Every stored event's id and seq, and whether the chain verifies."""
    engine = create_db_engine(f"sqlite:///{db}")
    try:
        rows = list(AuditStore(engine).iter_rows())
        return {r["event_id"]: int(r["seq"]) for r in rows}, verify_rows(iter(rows)).ok
    finally:
        engine.dispose()


def test_every_acknowledged_append_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    seen = b""
    with subprocess.Popen(
        [*CHILD, str(db), "32"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as child:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        try:
            while seen.count(b"\n") < 400 and time.monotonic() < deadline:
                chunk = os.read(child.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
        finally:
            child.send_signal(signal.SIGKILL)  # mid-burst: batches in flight, none flushed
            seen += child.stdout.read()  # every ack the process wrote before it died
    acks = read_acks(seen)
    assert len(acks) >= 400, "the writer did not get going"

    events, verified = stored(db)

    missing = [(seq, event_id) for seq, event_id in acks if events.get(event_id) != seq]
    assert not missing, f"acknowledged but not stored: {missing[:5]}"
    assert verified
    assert sorted(events.values()) == list(range(1, len(events) + 1))  # dense: no fork, no hole
    engine = create_db_engine(f"sqlite:///{db}")
    try:  # the next process extends the same chain
        [again] = AuditStore(engine).append_batch([new_event(EventType.ACCESS_DECISION)])
    finally:
        engine.dispose()
    assert again["seq"] == len(events) + 1


def test_each_acknowledged_append_follows_an_fsync_of_its_wal(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (`make test` installs it with apt as root)")
    db, trace = tmp_path / "audit.db", tmp_path / "trace.txt"
    # One writer: each append is one batch, so between two acks there is exactly one commit.
    traced = subprocess.run(
        [*strace_args(strace, trace), *CHILD, str(db), "1", "25"],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if traced.returncode != 0 and b"ptrace" in traced.stderr:
        pytest.skip(f"strace cannot trace here: {traced.stderr.decode()[:200]}")
    assert traced.returncode == 0, traced.stderr.decode()[-2000:]
    acks = read_acks(traced.stdout)
    assert [seq for seq, _ in acks] == list(range(1, 26))

    timeline = wal_syncs_and_acks(trace.read_text(), db)

    assert [kind for kind, _ in timeline].count("ack") == len(acks)
    since_last_ack = 0
    for kind, _when in timeline:
        if kind == "sync":
            since_last_ack += 1
        else:
            assert since_last_ack >= 1, "an append was acknowledged before its WAL was fsynced"
            since_last_ack = 0


def wal_syncs_and_acks(text: str, db: Path) -> list[tuple[str, float]]:
    """("sync", t) for each completed fsync/fdatasync of the WAL, ("ack", t) for each ack write,
    in time order (an fsync that blocked is split by strace: its completion counts)."""
    wal = f"{db}-wal>"
    pending: dict[str, bool] = {}  # pid -> its unfinished call was a WAL sync
    timeline: list[tuple[str, float]] = []
    for line in text.splitlines():
        # strace pads the pid column ("%-5u "), so a pid under 10000 is followed by several
        # spaces: split on runs of whitespace, not on one space.
        pid, when, call = line.split(None, 2)
        is_sync = call.startswith(("fdatasync(", "fsync(")) and wal in call
        if call.endswith("<unfinished ...>"):
            pending[pid] = is_sync
            continue
        if call.startswith("<... fdatasync resumed>") or call.startswith("<... fsync resumed>"):
            is_sync = pending.pop(pid, False)
        if is_sync and call.rstrip().endswith("= 0"):
            timeline.append(("sync", float(when)))
        elif call.startswith("write(1<") and '"ack ' in call:
            timeline.append(("ack", float(when)))
    return sorted(timeline, key=lambda item: item[1])
