"""Two real gateway processes (`footage-gateway serve`) sharing PostgreSQL and Redis.

One audit chain whatever replica answers; a suspension made on one replica refuses the next
request on the other; a policy edit reaches both; a browsing sweep split
across the replicas is caught at the single-replica thresholds (counters in Redis).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import audit_events, create_db_engine
from gateway.types import Zone
from tests.support.cluster import (
    START_TIMEOUT,
    GatewayProcess,
    clean_environ,
    console_script,
    copy_policies,
    fresh_schema,
    require_postgres,
    require_redis,
    wait_until,
    write_atomically,
)
from tests.support.legal import approve_legal
from tests.support.server import GatewayEnv, make_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CLIP = "20261128T101500Z.mp4"
CLIP_BYTES = bytes(range(256)) * 64  # 16 KiB
CUSTOMERS = [f"cust{i:02d}" for i in range(12)]
ANALYST_RULE = "p, security_analyst, -, audit.read, *, allow, none"
Plan = list[tuple[str, str, dict[str, str]]]  # (replica url, path, headers) per request


@dataclass
class Cluster:
    env: GatewayEnv
    replicas: list[GatewayProcess]
    database_url: str
    policy_dir: Path

    def token_headers(
        self, sub: str, *roles: str, customer_id: str | None = None, **headers: str
    ) -> dict[str, str]:
        return self.env.auth(sub, *roles, customer_id=customer_id, **headers)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base, redis_url = require_postgres(), require_redis()
    root = tmp_path_factory.mktemp("cluster")
    with fresh_schema(base) as database_url:
        policy_dir = copy_policies(root / "policies")
        env = make_env(
            root,
            {
                "FOOTGW_DATABASE_URL": database_url,
                "FOOTGW_REDIS_URL": redis_url,
                "FOOTGW_POLICY_DIR": str(policy_dir),
                "FOOTGW_STORAGE": f"file://{root / 'footage'}",
            },
        )
        for customer in CUSTOMERS:
            env.put_clip(customer, "cam", CLIP, CLIP_BYTES)
            env.set_zone(customer, "cam", Zone.OUTDOOR)
        replicas = [GatewayProcess(env.env, root / f"replica-{n}.log") for n in "ab"]
        try:
            for replica in replicas:
                replica.spawn()
            for replica in replicas:
                replica.wait_ready()
            yield Cluster(env, replicas, database_url, policy_dir)
        finally:
            for replica in replicas:
                replica.stop()


def decisions_by_request(database_url: str, request_ids: list[str]) -> dict[str, list[str]]:
    """request_id -> the event ids of its access.decision events."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit_events.c.request_id, audit_events.c.event_id).where(
                    audit_events.c.type == "access.decision",
                    audit_events.c.request_id.in_(request_ids),
                )
            ).all()
    finally:
        engine.dispose()
    found: dict[str, list[str]] = {}
    for request_id, event_id in rows:
        found.setdefault(request_id, []).append(event_id)
    return found


def audit_verify(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), "audit", "verify"],
        env=clean_environ(cluster.env.env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def request_plan(cluster: Cluster, n: int) -> Plan:
    """n interleaved requests: (replica url, path, headers), alternating replicas."""
    plan = []
    for i in range(n):
        owner = CUSTOMERS[i % len(CUSTOMERS)]
        other = CUSTOMERS[(i + 1) % len(CUSTOMERS)]
        kind = i % 4
        customer = other if kind == 2 else owner  # every 4th reads someone else's: denied
        path = f"/v1/footage/{customer}/cam" + ("" if kind == 3 else f"/{CLIP}")
        headers = cluster.token_headers(f"user-{owner}", "customer", customer_id=owner)
        headers["X-Request-ID"] = f"load-{i:04d}-{uuid.uuid4().hex[:12]}"
        if kind == 1:
            headers["Range"] = "bytes=100-1099"
        plan.append((cluster.replicas[i % 2].url, path, headers))
    return plan


async def run_plan(plan: Plan, clients: int) -> list[httpx.Response]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(plan)):
        queue.put_nowait(index)
    responses: list[httpx.Response | None] = [None] * len(plan)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30.0) as http:
            while not queue.empty():
                index = queue.get_nowait()
                url, path, headers = plan[index]
                responses[index] = await http.get(url + path, headers=headers)

    await asyncio.gather(*(client() for _ in range(clients)))
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


def test_interleaved_requests_on_two_replicas_make_one_chain(cluster: Cluster) -> None:
    plan = request_plan(cluster, 400)
    responses = asyncio.run(run_plan(plan, clients=16))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 200, 206: 100, 403: 100}, statuses
    served_by = Counter(str(r.url).split("/v1/")[0] for r in responses)
    assert sorted(served_by.values()) == [200, 200]
    # Exactly one access.decision per request, and it is the one the response named. The
    # request ids are the servers' own, never the caller's, and unique across replicas.
    request_ids = [r.headers["X-Request-ID"] for r in responses]
    assert len(set(request_ids)) == len(request_ids)
    assert not set(request_ids) & {headers["X-Request-ID"] for _, _, headers in plan}
    found = decisions_by_request(cluster.database_url, request_ids)
    assert {rid: len(ids) for rid, ids in found.items()} == dict.fromkeys(request_ids, 1)
    for response, request_id in zip(responses, request_ids, strict=True):
        assert found[request_id] == [response.headers["X-Audit-Event-ID"]]

    result = audit_verify(cluster)
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["ok"] and verdict["first_bad_seq"] is None
    assert verdict["events"] >= 400


def test_a_suspension_on_one_replica_refuses_the_next_request_on_the_other(cluster: Cluster):
    a, b = cluster.replicas
    subject = f"lou-{uuid.uuid4().hex[:8]}@legal"
    analyst = cluster.token_headers("ana@security", "security_analyst")
    legal = cluster.token_headers(
        subject,
        "legal",
        **{"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-1"},
    )
    clip_path = f"/v1/footage/{CUSTOMERS[0]}/cam/{CLIP}"
    with httpx.Client(timeout=10.0) as http:
        approve_legal(http, a.url, cluster.token_headers, subject, CUSTOMERS[:1], "SUBPOENA-1")
        assert http.get(b.url + clip_path, headers=legal).status_code == 200
        suspended = http.post(
            f"{a.url}/v1/principals/{subject}/suspend", headers=analyst, json={"reason": "test"}
        )
        assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
        refused = http.get(b.url + clip_path, headers=legal)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "principal_suspended"
        assert "X-Audit-Event-ID" in refused.headers
        # And back: reinstated through B, served by A at once.
        assert (
            http.post(f"{b.url}/v1/principals/{subject}/reinstate", headers=analyst).status_code
            == 200
        )
        assert http.get(a.url + clip_path, headers=legal).status_code == 200


def wait_for_status(urls: list[str], headers: dict[str, str], status: int) -> None:
    """Poll until every URL answers `status` (bounded, to fail a hang rather than to time it)."""
    with httpx.Client(timeout=5.0) as http:
        wait_until(
            lambda: all(http.get(url, headers=headers).status_code == status for url in urls),
            START_TIMEOUT,
        )


def policy_events(database_url: str) -> list[dict]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            bodies = (
                conn.execute(
                    sa.select(audit_events.c.body)
                    .where(audit_events.c.type == "policy.reloaded")
                    .order_by(audit_events.c.seq)
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    return [json.loads(body) for body in bodies]


def test_a_policy_edit_reaches_both_replicas(cluster: Cluster) -> None:
    # "Within a second" (docs/deploy.md) is the watcher's budget, checked in
    # tests/test_cluster_policy.py; here, that both processes switch, and each says so once.
    policy = cluster.policy_dir / "policy.csv"
    original = policy.read_text()
    assert ANALYST_RULE in original
    analyst = cluster.token_headers("ana@security", "security_analyst")
    urls = [f"{r.url}/v1/audit/events?limit=1" for r in cluster.replicas]
    with httpx.Client(timeout=10.0) as http:
        assert [http.get(url, headers=analyst).status_code for url in urls] == [200, 200]
    before = len(policy_events(cluster.database_url))
    try:
        write_atomically(policy, original.replace(ANALYST_RULE, "# audit.read withdrawn"))
        wait_for_status(urls, analyst, 403)
    finally:
        write_atomically(policy, original)
    wait_for_status(urls, analyst, 200)
    reloads = policy_events(cluster.database_url)[before:]
    # One event per replica per change, each naming the node and the content it loaded.
    assert len(reloads) == 4, [(e["reason"], e["detail"]) for e in reloads]
    assert {e["detail"]["ok"] for e in reloads} == {True}
    assert len({e["detail"]["node"] for e in reloads}) == 2


def test_a_browsing_sweep_split_across_replicas_is_caught_at_single_replica_thresholds(
    cluster: Cluster,
) -> None:
    subject = f"sweep-{uuid.uuid4().hex[:8]}@legal"
    legal = cluster.token_headers(
        subject,
        "legal",
        **{"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-2"},
    )
    analyst = cluster.token_headers("ana@security", "security_analyst")

    def browsing_flags(http: httpx.Client, url: str) -> list[dict]:
        flags = http.get(f"{url}/v1/flags?status=open", headers=analyst).json()["flags"]
        return [f for f in flags if f["principal"] == subject and f["rule"] == "customer_browsing"]

    statuses = []
    with httpx.Client(timeout=10.0) as http:
        url = cluster.replicas[0].url
        approve_legal(http, url, cluster.token_headers, subject, CUSTOMERS[:11], "SUBPOENA-2")
        for i, customer in enumerate(CUSTOMERS[:11]):
            replica, other = cluster.replicas[i % 2], cluster.replicas[(i + 1) % 2]
            response = http.get(f"{replica.url}/v1/footage/{customer}/cam/{CLIP}", headers=legal)
            statuses.append(response.status_code)
            flagged = browsing_flags(http, other.url)
            # Each replica saw at most half the customers: only shared counters reach 5.
            assert bool(flagged) == (i + 1 >= 5), (i, flagged)
        status = http.get(
            f"{cluster.replicas[1].url}/v1/principals/{subject}", headers=analyst
        ).json()
    assert statuses == [200] * 10 + [403]
    assert status["status"] == "suspended"
    assert status["reason"].startswith("customer_browsing")


SWEEP_CUSTOMERS = [f"swept{i:02d}" for i in range(20)]
SUSPEND_AT = 10  # customer_browsing in the shipped policies/detection.toml


def sweeper_headers(cluster: Cluster, kind: str, sub: str) -> dict[str, str]:
    """A staff principal who may see every swept customer: under grants, legal or break-glass."""
    if kind == "grant":
        ticket = "CASE-808"
        body = {
            "grantee": sub,
            "purpose": "customer_support",
            "cameras": ["*"],
            "footage_from": "2026-11-28T00:00:00Z",
            "footage_until": "2026-11-29T00:00:00Z",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "ticket": ticket,
        }
        with httpx.Client(timeout=10.0) as http:
            for customer in SWEEP_CUSTOMERS:
                owner = cluster.token_headers(f"owner-{customer}", "customer", customer_id=customer)
                r = http.post(f"{cluster.replicas[0].url}/v1/grants", json=body, headers=owner)
                assert r.status_code == 201, r.text
        return cluster.token_headers(
            sub,
            "support_agent",
            **{"X-Access-Purpose": "customer_support", "X-Access-Justification": f"{ticket} x"},
        )
    if kind == "legal":
        with httpx.Client(timeout=10.0) as http:
            url = cluster.replicas[0].url
            approve_legal(http, url, cluster.token_headers, sub, SWEEP_CUSTOMERS, "SUBPOENA-3")
        purpose = {"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-3"}
        return cluster.token_headers(sub, "legal", **purpose)
    token = cluster.env.token(sub, "support_lead", ttl=600)
    return {
        "Authorization": f"Bearer {token}",
        "X-Access-Purpose": "emergency",
        "X-Access-Justification": "INC-3 smoke alarm",
    }


@pytest.mark.parametrize("kind", ["grant", "legal", "break_glass"])
def test_a_concurrent_sweep_across_two_replicas_stops_at_the_suspend_threshold(
    cluster: Cluster, kind: str
) -> None:
    """40 requests at once, alternating replicas, over 20 customers: footage of exactly 10."""
    for customer in SWEEP_CUSTOMERS:
        cluster.env.put_clip(customer, "cam", CLIP, CLIP_BYTES)
        cluster.env.set_zone(customer, "cam", Zone.OUTDOOR)
    subject = f"sweep-{kind}-{uuid.uuid4().hex[:8]}"
    headers = sweeper_headers(cluster, kind, subject)
    plan: Plan = [
        (
            cluster.replicas[i % 2].url,
            f"/v1/footage/{SWEEP_CUSTOMERS[i % len(SWEEP_CUSTOMERS)]}/cam/{CLIP}",
            headers,
        )
        for i in range(40)
    ]

    responses = asyncio.run(run_plan(plan, clients=40))

    served = {r.url.path.split("/")[3] for r in responses if r.status_code == 200}
    assert len(served) == SUSPEND_AT, Counter(r.status_code for r in responses)
    refused = [r for r in responses if r.status_code != 200]
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {
        (403, "principal_suspended")
    }
    analyst = cluster.token_headers("ana@security", "security_analyst")
    with httpx.Client(timeout=10.0) as http:
        status = http.get(
            f"{cluster.replicas[1].url}/v1/principals/{subject}", headers=analyst
        ).json()
    assert status["status"] == "suspended"
    assert status["reason"].startswith("customer_browsing")
    assert status["activity"]["distinct_customers_last_hour"] == SUSPEND_AT
