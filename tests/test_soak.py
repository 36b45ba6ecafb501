"""Soak: 64 concurrent clients against a real `footage-gateway serve` process (opt-in, `make soak`).

Mixed traffic for FOOTGW_SOAK_SECONDS (default 120; `FOOTGW_SOAK_SECONDS=600 make soak` for the
ten-minute run docs/security.md §7 records) on loopback: owners' ranged and whole reads,
HEADs and listings; support agents reading under role grants that owners create and revoke
while it runs; and denials of every kind (other customers, missing purposes, analysts, no
grant, bad ranges, malformed ids, forged tokens). Every 30 s the audit database is held locked
for a second (an injected fault shorter than every timeout, so it must cost latency only).

Asserted: zero 5xx and zero transport errors; exactly one access.decision event per footage
request, found by the X-Request-ID the server issues each one; the chain verifies after a graceful
stop (`footage-gateway audit verify`); the server's memory is flat after warm-up. Figures are
printed (run with -s): throughput, latency percentiles, statuses, peak RSS, and RSS every 30 s.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import create_db_engine
from gateway.types import Zone
from tests.support.faults import GatewayProcess, cli, wait_until
from tests.support.server import GatewayEnv, make_env
from tests.support.tokens import make_keypair, sign

pytestmark = pytest.mark.soak

CLIENTS = 64
SECONDS = float(os.environ.get("FOOTGW_SOAK_SECONDS", "120"))
CUSTOMERS = [f"c{n}" for n in range(1, 9)]
CLIPS = [f"20261127T1{m}1500Z.mp4" for m in range(5)]
CLIP_SIZE = 512 * 1024
WARMUP = 0.2  # the first fifth of the run is warm-up for the memory comparison
LOCK_EVERY, LOCK_FOR = 30.0, 1.0
CURVE_EVERY = 30.0  # the RSS curve's step, as docs/security.md §7 records it


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    footage_requests: dict[str, int] = field(default_factory=dict)  # request id -> status
    errors: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    grants: list[tuple[str, str]] = field(default_factory=list)  # (customer, grant id)


def seed(env: GatewayEnv) -> None:
    body = bytes(range(256)) * (CLIP_SIZE // 256)
    for customer in CUSTOMERS:
        env.set_zone(customer, "front", Zone.OUTDOOR)
        env.set_zone(customer, "nursery", Zone.PRIVATE)
        for clip in CLIPS:
            env.put_clip(customer, "front", clip, body)
        env.put_clip(customer, "nursery", CLIPS[0], body)


class Traffic:
    """One soak run's callers and their mix of requests."""

    def __init__(self, env: GatewayEnv, tally: Tally) -> None:
        self.env, self.tally = env, tally
        self.forger = make_keypair("ed25519", "forged")
        self.counter = 0
        self.tokens: dict[str, str] = {}  # owners' tokens outlive the run, however long

    def owner(self, customer: str) -> dict[str, str]:
        if customer not in self.tokens:
            self.tokens[customer] = self.env.token(
                f"owner-{customer}", "customer", customer_id=customer, ttl=int(SECONDS) + 600
            )
        return {"Authorization": f"Bearer {self.tokens[customer]}"}

    def staff(self, sub: str, role: str, **headers: str) -> dict[str, str]:
        return self.env.auth(sub, role, **headers)

    def next_id(self) -> str:
        self.counter += 1
        return f"soak-{self.counter}-{uuid.uuid4().hex[:8]}"

    async def one(self, client: httpx.AsyncClient, worker: int, rng: random.Random) -> None:
        customer = rng.choice(CUSTOMERS)
        clip = rng.choice(CLIPS)
        path = f"/v1/footage/{customer}/front/{clip}"
        roll = rng.random()
        if roll < 0.40:
            start = rng.randrange(CLIP_SIZE)
            headers = {
                **self.owner(customer),
                "Range": f"bytes={start}-{start + rng.randrange(1, 200_000)}",
            }
            await self.footage(client, "owner range", "GET", path, headers, {206})
        elif roll < 0.48:
            await self.footage(client, "owner whole", "GET", path, self.owner(customer), {200})
        elif roll < 0.53:
            await self.footage(client, "owner head", "HEAD", path, self.owner(customer), {200})
        elif roll < 0.57:
            await self.footage(
                client,
                "owner list",
                "GET",
                f"/v1/footage/{customer}/front",
                self.owner(customer),
                {200},
            )
        elif roll < 0.70:
            headers = self.staff(
                f"agent-{worker}",
                "support_agent",
                **{
                    "X-Access-Purpose": "customer_support",
                    "X-Access-Justification": f"SOAK-{customer} call",
                },
            )
            await self.footage(client, "agent under grant", "GET", path, headers, {200, 403})
        elif roll < 0.92:
            await self.denial(client, rng, customer, path)
        else:
            await self.grant_churn(client, rng, customer)

    async def denial(
        self, client: httpx.AsyncClient, rng: random.Random, customer: str, path: str
    ) -> None:
        other = rng.choice([c for c in CUSTOMERS if c != customer])
        # A fixed population of 256 curious employees: ~10 denials each per run, under the
        # 20 that suspend (and, like real staff, a bounded set of principals to remember).
        curious = f"curious-{self.counter % 256}"
        choices: list[tuple[str, dict[str, str], set[int], str]] = [
            ("other customer", self.owner(other), {403}, path),
            ("staff without purpose", self.staff(curious, "support_agent"), {403}, path),
            (
                "analyst",
                self.staff(
                    curious,
                    "security_analyst",
                    **{
                        "X-Access-Purpose": "customer_support",
                        "X-Access-Justification": "peek peek",
                    },
                ),
                {403},
                path,
            ),
            (
                "model training",
                self.staff(
                    curious,
                    "trust_safety",
                    **{
                        "X-Access-Purpose": "model_training",
                        "X-Access-Justification": "dataset v2",
                    },
                ),
                {403},
                path,
            ),
            (
                "unsatisfiable range",
                {**self.owner(customer), "Range": f"bytes={CLIP_SIZE}-"},
                {416},
                path,
            ),
            (
                "malformed id",
                self.owner(customer),
                {400},
                f"/v1/footage/{customer}/fr.ont/{CLIPS[0]}",
            ),
            (
                "missing clip",
                self.owner(customer),
                {404},
                f"/v1/footage/{customer}/front/20261127T235959Z.mp4",
            ),
            (
                "forged token",
                {
                    "Authorization": "Bearer "
                    + sign({"sub": "x", "roles": ["admin"], "exp": 4102444800}, self.forger)
                },
                {401},
                path,
            ),
        ]
        kind, headers, expected, target = rng.choice(choices)
        await self.footage(client, kind, "GET", target, headers, expected)

    async def grant_churn(
        self, client: httpx.AsyncClient, rng: random.Random, customer: str
    ) -> None:
        mine = [g for g in self.tally.grants if g[0] == customer]
        if mine and rng.random() < 0.5:
            _, grant_id = mine[0]
            self.tally.grants.remove(mine[0])
            await self.call(
                client,
                "grant revoke",
                "DELETE",
                f"/v1/grants/{grant_id}",
                self.owner(customer),
                {200},
            )
            return
        body = {
            "grantee": "role:support_agent",
            "purpose": "customer_support",
            "cameras": ["front"],
            "footage_from": "2026-11-27T00:00:00Z",
            "footage_until": "2026-11-27T23:59:59Z",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticket": f"SOAK-{customer}",
        }
        r = await self.call(
            client, "grant create", "POST", "/v1/grants", self.owner(customer), {201}, json=body
        )
        if r is not None and r.status_code == 201:
            self.tally.grants.append((customer, r.json()["grant_id"]))

    async def footage(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        expected: set[int],
    ) -> None:
        request_id = self.next_id()
        r = await self.call(
            client, kind, method, path, {**headers, "X-Request-ID": request_id}, expected
        )
        if r is not None:
            # The server issues the id its events carry (contract §7); the caller's is kept aside.
            server_id = r.headers.get("X-Request-ID", f"missing:{request_id}")
            self.tally.footage_requests[server_id] = r.status_code

    async def call(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        expected: set[int],
        **kw: Any,
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            r = await client.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            self.tally.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        self.tally.latencies.append(time.monotonic() - started)
        self.tally.statuses[r.status_code] += 1
        self.tally.kinds[kind] += 1
        if r.status_code >= 500:
            self.tally.server_errors.append(
                f"{kind} {method} {path}: {r.status_code} {r.text[:200]}"
            )
        elif r.status_code not in expected:
            self.tally.errors.append(
                f"{kind} {method} {path}: unexpected {r.status_code} {r.text[:120]}"
            )
        return r


async def run_load(
    gateway: GatewayProcess, traffic: Traffic, deadline: float
) -> list[tuple[float, int]]:
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)

    async def client_loop(worker: int) -> None:
        rng = random.Random(worker)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30, limits=limits) as client:
            while time.monotonic() < deadline:
                await traffic.one(client, worker, rng)

    async def sample_memory() -> None:
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - started, gateway.memory_kb()["VmRSS"]))
            await asyncio.sleep(1.0)  # a sampling period, not synchronisation

    async def lock_audit_now_and_then() -> None:
        database = Path(traffic.env.settings.database_url.removeprefix("sqlite:///"))
        while time.monotonic() + LOCK_EVERY < deadline:
            await asyncio.sleep(LOCK_EVERY)  # the fault's schedule
            conn = sqlite3.connect(database, isolation_level=None, timeout=10)
            try:
                conn.execute("BEGIN IMMEDIATE")
                await asyncio.sleep(LOCK_FOR)  # the fault's length: shorter than every timeout
                conn.execute("ROLLBACK")
            finally:
                conn.close()

    await asyncio.gather(
        *(client_loop(n) for n in range(CLIENTS)), sample_memory(), lock_audit_now_and_then()
    )
    return samples


def decisions_by_request(database_url: str) -> tuple[Counter[str], int]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT request_id FROM audit_events WHERE type = 'access.decision'")
            ).all()
            total = int(conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() or 0)
    finally:
        engine.dispose()
    return Counter(str(r.request_id) for r in rows), total


def fifths(samples: list[tuple[float, int]]) -> list[int]:
    """The RSS sample nearest each fifth of the run, and the last one."""
    if not samples:
        return []
    end = samples[-1][0]
    return [min(samples, key=lambda s: abs(s[0] - end * k / 5))[1] for k in range(1, 6)]


def every(samples: list[tuple[float, int]], step: float) -> list[tuple[int, int]]:
    """(second, RSS kB) of the sample nearest each multiple of `step`, from the start."""
    if not samples:
        return []
    marks = [step * k for k in range(int(samples[-1][0] // step) + 1)]
    return [(int(m), min(samples, key=lambda s: abs(s[0] - m))[1]) for m in marks]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


@pytest.mark.timeout(SECONDS + 240)  # the suite's 120 s default is shorter than the run
def test_soak(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    seed(env)
    tally = Tally()
    traffic = Traffic(env, tally)
    gateway = GatewayProcess(env.env, tmp_path / "gateway.log").start()
    try:
        started = time.monotonic()
        samples = asyncio.run(run_load(gateway, traffic, started + SECONDS))
        elapsed = time.monotonic() - started
        memory = gateway.memory_kb()
        # Let the last access.complete events land, then stop gracefully.
        counted = {"n": -1}

        def settled() -> bool:
            _, total = decisions_by_request(env.settings.database_url)
            done, counted["n"] = total == counted["n"], total
            return done

        wait_until(settled, 30, "the audit log to settle", interval=0.5)
    finally:
        gateway.stop()
    verified = cli(env.env, "audit", "verify")
    decisions, events = decisions_by_request(env.settings.database_url)

    requests = sum(tally.statuses.values())
    curve = " ".join(f"{rss / 1024:.0f}" for rss in fifths(samples))
    steps = " ".join(f"{t}s:{rss / 1024:.0f}" for t, rss in every(samples, CURVE_EVERY))
    warm = [rss for t, rss in samples if t >= SECONDS * WARMUP]
    early = statistics.mean(warm[: max(1, len(warm) // 4)])
    late = statistics.mean(warm[-max(1, len(warm) // 4) :])
    print(
        f"\n--- soak: {CLIENTS} clients for {elapsed:.0f} s against a footage-gateway process ---\n"
        f"requests {requests} ({requests / elapsed:.0f}/s), footage requests "
        f"{len(tally.footage_requests)}, audit events {events}\n"
        f"latency p50 {percentile(tally.latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(tally.latencies, 0.95) * 1000:.0f} ms, "
        f"p99 {percentile(tally.latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(tally.latencies) * 1000:.0f} ms\n"
        f"statuses {dict(sorted(tally.statuses.items()))}\n"
        f"mix {dict(tally.kinds.most_common())}\n"
        f"5xx {len(tally.server_errors)}, transport errors {len(tally.errors)}\n"
        f"RSS after warm-up {early / 1024:.1f} MiB -> end {late / 1024:.1f} MiB, "
        f"peak RSS (VmHWM) {memory['VmHWM'] / 1024:.1f} MiB\n"
        f"RSS by fifths of the run (MiB): {curve}\n"
        f"RSS every {CURVE_EVERY:.0f} s (MiB): {steps}\n"
        f"audit verify: exit {verified.returncode} {verified.stdout.strip()}\n"
    )
    assert not tally.server_errors, tally.server_errors[:10]
    assert not tally.errors, tally.errors[:10]
    missing = [rid for rid in tally.footage_requests if decisions[rid] != 1]
    assert not missing, (
        f"{len(missing)} footage requests without exactly one decision: {missing[:5]}"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert late - early < max(0.25 * early, 40 * 1024), (early, late)
    assert requests >= CLIENTS * 5
