"""`footage-gateway serve --workers 2`: two real worker processes on one socket, as one gateway.

Each test runs the production entry point in a subprocess (FOOTGW_WORKERS=2) and pins HTTP
connections to a known worker (tests/support/workers.py reads which process holds each one
from /proc), so "the other worker" is a fact observed, not hoped for: both workers serve, one
audit chain verifies after concurrent load through both (SQLite and PostgreSQL), a sweep
spread over both workers is admitted no further than its threshold (the counters are shared),
a suspension made through one worker refuses the next request on the other, and a worker
that is SIGKILLed is replaced by a new process that serves.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.types import Zone
from gateway.workers import available_cpus
from tests.support.cluster import EITHER_DATABASE, database_settings
from tests.support.faults import GatewayProcess, verify_chain, wait_until
from tests.support.legal import approve_legal
from tests.support.server import GatewayEnv, make_env
from tests.support.workers import (
    connect,
    get,
    pinned_connections,
    serving_pid,
    wait_for_workers,
    worker_pids,
)
from tests.test_detection_http import ALWAYS_WORKING, clip_at, policy_dir

WORKERS = 2
SUSPEND_AT = 4
THRESHOLDS = (
    ALWAYS_WORKING + f"\n[rules.customer_browsing]\nflag_at = 2\nsuspend_at = {SUSPEND_AT}\n"
)
CUSTOMERS = [f"k{i:02d}" for i in range(10)]
LEGAL = {"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-9"}


def start(env: GatewayEnv, log: Path) -> GatewayProcess:
    return GatewayProcess(env.env, log, FOOTGW_WORKERS=str(WORKERS)).start()


@pytest.fixture
def sqlite_env(tmp_path: Path) -> GatewayEnv:
    env = make_env(tmp_path, {"FOOTGW_POLICY_DIR": str(policy_dir(tmp_path, THRESHOLDS))})
    clip = clip_at(0)
    for customer in CUSTOMERS:
        env.put_clip(customer, "porch", clip, f"{customer} footage".encode())
        env.set_zone(customer, "porch", Zone.OUTDOOR)
    return env


@pytest.fixture
def gateway(sqlite_env: GatewayEnv, tmp_path: Path) -> Iterator[GatewayProcess]:
    process = start(sqlite_env, tmp_path / "gateway.log")
    try:
        yield process
    finally:
        process.stop()


def test_two_workers_both_serve_on_one_socket(gateway: GatewayProcess) -> None:
    pids = wait_for_workers(gateway.pid, WORKERS)
    assert gateway.pid not in pids
    with pinned_connections(gateway.url, pids) as held:
        assert set(held) == pids  # each worker answered a request of its own
        for pid, (conn,) in held.items():
            assert get(conn, "/healthz", {})[0] == 200
            assert serving_pid(conn, pids) == pid  # kept alive: the same worker again


def test_a_killed_worker_is_replaced_by_one_that_serves(gateway: GatewayProcess) -> None:
    before = wait_for_workers(gateway.pid, WORKERS)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in worker_pids(gateway.pid) and len(worker_pids(gateway.pid)) == 2,
        30,
        "a replacement worker",
    )
    after = worker_pids(gateway.pid)
    (replacement,) = after - before
    with pinned_connections(gateway.url, after) as held:
        assert get(held[replacement][0], "/healthz", {})[0] == 200
    assert gateway.proc is not None and gateway.proc.poll() is None  # the supervisor stays


def test_a_sweep_spread_over_both_workers_is_admitted_only_to_the_threshold(
    sqlite_env: GatewayEnv, gateway: GatewayProcess
) -> None:
    """40 requests at once, 20 through each worker, over 10 customers: 4 customers' footage."""
    pids = wait_for_workers(gateway.pid, WORKERS)
    approve_legal_views(sqlite_env, gateway, CUSTOMERS)
    legal = sqlite_env.auth("lou", "legal", **LEGAL)
    clip = clip_at(0)
    with pinned_connections(gateway.url, pids, per_worker=20) as held:
        conns = [c for conns in held.values() for c in conns]
        paths = [f"/v1/footage/{CUSTOMERS[i % len(CUSTOMERS)]}/porch/{clip}" for i in range(40)]
        answers = _all_at_once(list(zip(conns, paths, strict=True)), legal)
    served = {path.split("/")[3] for path, status in answers if status == 200}
    assert len(served) == SUSPEND_AT, Counter(status for _, status in answers)
    assert {status for _, status in answers} == {200, 403}
    analyst = sqlite_env.auth("ana", "security_analyst")
    check = connect(gateway.url)
    try:
        status, body = get(check, "/v1/principals/lou", analyst)
    finally:
        check.close()
    assert status == 200 and b'"suspended"' in body


def test_a_suspension_through_one_worker_refuses_the_next_request_on_the_other(
    sqlite_env: GatewayEnv, gateway: GatewayProcess
) -> None:
    pids = wait_for_workers(gateway.pid, WORKERS)
    approve_legal_views(sqlite_env, gateway, ["k00"])
    legal = sqlite_env.auth("lou", "legal", **LEGAL)
    analyst = sqlite_env.auth("ana", "security_analyst")
    path = f"/v1/footage/k00/porch/{clip_at(0)}"
    with pinned_connections(gateway.url, pids) as held:
        first, second = (held[pid][0] for pid in sorted(pids))
        assert get(second, path, legal)[0] == 200  # served by the other worker before
        first.request("POST", "/v1/principals/lou/suspend", body=b"{}", headers=analyst)
        assert first.getresponse().read() and True
        status, body = get(second, path, legal)
        assert status == 403 and b"principal_suspended" in body
        assert serving_pid(second, pids) != serving_pid(first, pids)


@pytest.fixture(params=EITHER_DATABASE)
def any_database_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayEnv]:
    with database_settings(request.param) as extra:
        env = make_env(
            tmp_path, {**extra, "FOOTGW_POLICY_DIR": str(policy_dir(tmp_path, ALWAYS_WORKING))}
        )
        env.put_clip("c1", "porch", clip_at(0), b"\x07" * 4096)
        yield env


def test_one_chain_verifies_after_concurrent_load_through_both_workers(
    any_database_env: GatewayEnv, tmp_path: Path
) -> None:
    env = any_database_env
    owner = env.auth("alice", "customer", customer_id="c1")
    path = f"/v1/footage/c1/porch/{clip_at(0)}"
    process = start(env, tmp_path / "chain.log")
    try:
        pids = wait_for_workers(process.pid, WORKERS)
        with pinned_connections(process.url, pids, per_worker=8) as held:
            conns = [c for conns in held.values() for c in conns]
            answers = _all_at_once([(c, path) for c in conns for _ in range(25)], owner)
    finally:
        process.stop()
    assert Counter(status for _, status in answers) == {200: 16 * 25}
    result = verify_chain(env.settings.database_url)
    assert result.ok, result.problem
    # Every view's decision and completion, from both workers, on the one chain.
    assert result.events >= 2 * 16 * 25


def approve_legal_views(env: GatewayEnv, gateway: GatewayProcess, customers: list[str]) -> None:
    """Legal views need an approved legal request first (contract §13)."""
    with httpx.Client(timeout=30) as http:
        approve_legal(http, gateway.url, env.auth, "lou", customers, "SUBPOENA-9")


def _all_at_once(
    work: list[tuple[http.client.HTTPConnection, str]], headers: dict[str, str]
) -> list[tuple[str, int]]:
    """Each connection's requests in a thread of its own, all threads released together."""
    by_conn: dict[int, list[tuple[http.client.HTTPConnection, str]]] = {}
    for conn, path in work:
        by_conn.setdefault(id(conn), []).append((conn, path))
    answers: list[tuple[str, int]] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(by_conn))

    def run(items: list[tuple[http.client.HTTPConnection, str]]) -> None:
        gate.wait()
        for conn, path in items:
            status, _ = get(conn, path, headers)
            with lock:
                answers.append((path, status))

    threads = [threading.Thread(target=run, args=(items,)) for items in by_conn.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == len(work)
    return answers


def test_the_default_worker_count_honours_a_cgroup_cpu_limit(tmp_path: Path) -> None:
    """A Kubernetes CPU limit is a quota, not a cpuset: 1.5 CPUs are 2 workers, not every core."""
    cpu_max = tmp_path / "cpu.max"
    affinity = len(os.sched_getaffinity(0))
    cpu_max.write_text("150000 100000\n")
    assert available_cpus(cpu_max) == min(affinity, 2)
    cpu_max.write_text("max 100000\n")  # no limit: the affinity mask alone
    assert available_cpus(cpu_max) == affinity
    assert available_cpus(tmp_path / "missing") == affinity
    cpu_max.write_text("50000 100000\n")  # half a CPU is still one worker
    assert available_cpus(cpu_max) == 1
