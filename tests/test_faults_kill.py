"""SIGKILL in the middle of streams: a `footage-gateway serve` process is killed while it holds
open clip streams and answers a burst of concurrent requests. On restart the chain verifies
(`footage-gateway audit verify` exits 0) and every view that started, every answer that carried
an X-Audit-Event-ID, has its committed decision event; streams cut by the kill have no
access.complete, and the restarted process serves and extends the same chain.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from gateway.types import Zone
from tests.support.faults import GatewayProcess, all_events, cli, verify_chain, wait_until
from tests.support.server import make_env

BIG = "20261127T101500Z.mp4"
SMALL = "20261127T111500Z.mp4"
MIB = 1024 * 1024
STREAMS = 8
WORKERS = 12


def test_sigkill_mid_stream_leaves_a_verifiable_chain_with_every_started_view(
    tmp_path: Path,
) -> None:
    env = make_env(tmp_path)
    env.set_zone("c1", "front", Zone.OUTDOOR)
    env.put_clip("c1", "front", BIG, b"\x01" * (32 * MIB))
    env.put_clip("c1", "front", SMALL, b"\x02" * (64 * 1024))
    owner = env.auth("alice", "customer", customer_id="c1")
    stranger = env.auth("bob", "customer", customer_id="c2")
    answered: list[dict[str, Any]] = []
    lock = threading.Lock()

    gateway = GatewayProcess(env.env, tmp_path / "first.log").start()
    stop = threading.Event()

    def worker(n: int) -> None:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            while not stop.is_set():
                headers = stranger if n % 3 == 0 else {**owner, "Range": f"bytes={n}-{n + 999}"}
                try:
                    r = client.get(f"/v1/footage/c1/front/{SMALL}", headers=headers)
                except httpx.HTTPError:
                    return  # the process is gone
                with lock:
                    answered.append({"status": r.status_code, **r.headers})

    with contextlib.ExitStack() as stack, httpx.Client(base_url=gateway.url, timeout=30) as c:
        stack.callback(gateway.stop)  # on any failure below, never leave the process behind
        streams = []
        for _ in range(STREAMS):
            r = stack.enter_context(c.stream("GET", f"/v1/footage/c1/front/{BIG}", headers=owner))
            chunks = r.iter_raw()
            first = next(chunks)  # headers and a first chunk: this view has started
            assert r.status_code == 200 and first
            streams.append((r, chunks))
        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(WORKERS)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(answered) >= 30, 30, "a burst of answers in flight")
        gateway.kill(signal.SIGKILL)  # mid-stream, mid-burst, no chance to flush anything
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        started = [{"status": r.status_code, **r.headers} for r, _ in streams]
        for _, chunks in streams:  # the held streams end short: the server is gone
            received = 0
            with contextlib.suppress(httpx.HTTPError):
                for chunk in chunks:
                    received += len(chunk)
            assert received < 32 * MIB

    verified = cli(env.env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = all_events(env.settings.database_url)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    decisions = {e["event_id"]: e for e in events if e["type"] == "access.decision"}
    completes = {e["request_id"] for e in events if e["type"] == "access.complete"}
    for answer in started + answered:
        event = decisions.get(answer["x-audit-event-id"])
        assert event is not None, f"an answered request has no decision event: {answer}"
        assert event["request_id"] == answer["x-request-id"]
        assert event["status"] == answer["status"]
        assert event["decision"] == ("allow" if answer["status"] < 400 else "deny")
    for answer in started:  # killed mid-stream: no completion could have been recorded
        assert answer["x-request-id"] not in completes

    with GatewayProcess(env.env, tmp_path / "second.log") as again:
        r = httpx.get(f"{again.url}/v1/footage/c1/front/{SMALL}", headers=owner, timeout=30)
        assert r.status_code == 200 and len(r.content) == 64 * 1024
        wait_until(
            lambda: any(
                e["type"] == "access.complete" and e["request_id"] == r.headers["x-request-id"]
                for e in all_events(env.settings.database_url)[-5:]
            ),
            10,
            "the restarted process's access.complete",
        )
    assert verify_chain(env.settings.database_url).ok
    after = all_events(env.settings.database_url)
    assert len(after) > len(events) and after[: len(events)] == events  # the same chain, extended
    print(
        f"\nSIGKILL: {len(started)} streams held, {len(answered)} answers in the burst, "
        f"{len(events)} events before restart, chain intact"
    )
