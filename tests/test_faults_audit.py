"""Audit store faults: slow, and out of space. (Locked and renamed-away are in
tests/test_gateway_attacks.py.) Each must answer 503 `audit_unavailable` with no footage byte,
and the gateway must recover by itself, without a restart, once the store does.

Out of space is real where this process may mount a tiny tmpfs for the database (root, as in
CI); elsewhere SQLite's `PRAGMA max_page_count` on every pooled connection gives the same
SQLITE_FULL.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.support.faults import (
    assert_no_footage,
    services_of,
    tmpfs,
    trace,
    verify_chain,
    wait_for_complete,
)
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = b"PRIVATE-ZONE-BYTES" * 8192


def owner(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def assert_audit_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.status_code
    if r.request.method != "HEAD":
        assert r.json()["error"]["code"] == "audit_unavailable"
    assert_no_footage(r, DATA)
    assert "x-audit-event-id" not in r.headers  # no event stands behind this answer


# --- slow --------------------------------------------------------------------------------------


@pytest.fixture
def slow_store(live: Live) -> Iterator[tuple[Live, threading.Event]]:
    live.env.put_clip("c1", "front", CLIP, DATA)
    services = services_of(live)
    services.audit.timeout = 0.5  # production waits 5 s; the behaviour is the same, sooner
    store = services.audit.store
    real = store.append_batch
    gate = threading.Event()
    gate.set()

    def slow_append(events: Any) -> Any:
        gate.wait(timeout=20)  # the fault: a store that answers late (in its worker thread)
        return real(events)

    store.append_batch = slow_append
    try:
        yield live, gate
    finally:
        gate.set()
        store.append_batch = real


def test_a_slow_audit_store_is_503_with_no_bytes_then_recovers(slow_store) -> None:
    live, gate = slow_store
    assert live.client.get(PATH, headers=owner(live)).status_code == 200  # control
    gate.clear()
    started = time.monotonic()
    refused = [
        live.client.get(PATH, headers=owner(live)),
        live.client.get(PATH, headers={**owner(live), "Range": "bytes=0-99"}),
        live.client.head(PATH, headers=owner(live)),
        live.client.get("/v1/footage/c1/front", headers=owner(live)),
    ]
    for r in refused:
        assert_audit_unavailable(r)
    assert time.monotonic() - started < 4 * 3  # each waits the audit timeout, not forever
    gate.set()  # the store answers again: no restart, the next request is served
    again = live.client.get(PATH, headers=owner(live))
    assert again.status_code == 200 and again.content == DATA
    wait_for_complete(live.env.settings.database_url, again.headers["x-request-id"])
    assert verify_chain(live.env.settings.database_url).ok
    for r in refused:
        # A decision that missed its deadline may still land once the store wakes: the log
        # then shows a decision for a request that was answered 503, never a stream for it.
        events = trace(live.env.settings.database_url, r.headers["x-request-id"])
        assert [e["type"] for e in events] in ([], ["access.decision"])


# --- out of space -------------------------------------------------------------------------------


class FullDisk:
    """Fill the audit database's filesystem (tmpfs), or cap its pages; and free it again."""

    def __init__(self, live: Live, mount: Path | None) -> None:
        self.live, self.mount = live, mount
        self.filler = mount / "filler" if mount else None
        self.cap: list[int | None] = [None]
        if mount is None:  # no tmpfs here: cap the page count on every connection checked out
            engine = services_of(live).engine
            sa.event.listen(engine, "checkout", self._apply_cap)

    def _apply_cap(self, dbapi_connection: Any, *_: Any) -> None:
        limit = self.cap[0] or 1073741823  # SQLite's default maximum
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

    def fill(self) -> None:
        if self.filler is None:
            with services_of(self.live).engine.connect() as conn:
                self.cap[0] = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 1)
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (65536, 4096, 512, 1):  # down to the very last byte
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        if self.filler is None:
            self.cap[0] = None
        else:
            self.filler.unlink()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Live, FullDisk]]:
    db_dir = tmp_path / "dbfs"
    with tmpfs(db_dir, size_kb=8 * 1024) as mounted:
        data = tmp_path / "data"
        data.mkdir()
        env = make_env(data, {"FOOTGW_DATABASE_URL": f"sqlite:///{db_dir}/gateway.db"})
        env.put_clip("c1", "front", CLIP, DATA)
        live = start_live(env)
        try:
            yield live, FullDisk(live, db_dir if mounted else None)
        finally:
            live.client.close()
            live.server.stop()


def test_an_audit_store_out_of_space_is_503_with_no_bytes_then_recovers(full_disk) -> None:
    live, disk = full_disk
    assert live.client.get(PATH, headers=owner(live)).content == DATA  # control
    disk.fill()
    answers = []
    for _ in range(200):  # bounded: pages already allocated may take a few more events
        r = live.client.get(PATH, headers=owner(live))
        answers.append(r.status_code)
        if r.status_code == 503:
            assert_audit_unavailable(r)
            break
        assert r.status_code == 200 and r.content == DATA  # whole, or nothing at all
    assert answers[-1] == 503, answers
    assert_audit_unavailable(live.client.get(PATH, headers=owner(live)))  # and it stays so
    disk.free()
    again = live.client.get(PATH, headers=owner(live))
    assert again.status_code == 200 and again.content == DATA  # recovered, no restart
    wait_for_complete(live.env.settings.database_url, again.headers["x-request-id"])
    result = verify_chain(live.env.settings.database_url)
    assert result.ok, result
