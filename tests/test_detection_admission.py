"""Admission (contract §8): a suspend threshold holds however many requests arrive at once.

A sweep of 40 concurrent requests from one staff principal across more customers than the
threshold, over real HTTP (uvicorn on an ephemeral port, SQLite, in-process counters), for a
grant-holder, for `legal` (no grant needed) and for break-glass: the principal gets footage of
exactly the threshold's worth of customers, every other request is refused as suspended, and
one suspension is recorded. The same sweep on two replicas sharing PostgreSQL and Redis is in
tests/test_cluster.py; the atomic step itself, in tests/test_detection_redis.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from gateway.types import Zone
from tests.support.legal import approve_legal
from tests.support.server import Live
from tests.test_detection_http import (
    ALWAYS_WORKING,
    agent,
    analyst,
    clip_at,
    events,
    grant,
    open_flags,
    start,
)

SUSPEND_AT = 4
THRESHOLDS = (
    ALWAYS_WORKING
    + f"""
[rules.customer_browsing]
flag_at = 2
suspend_at = {SUSPEND_AT}
"""
)
CUSTOMERS = [f"k{i:02d}" for i in range(10)]
BURST = 40
TICKET = "CASE-707"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[[str], Live]]:
    made: list[Live] = []

    def make(detection: str) -> Live:
        made.append(start(tmp_path, detection))
        return made[-1]

    yield make
    for live in made:
        live.close()


def sweeper(
    live: Live, kind: str, sub: str, customers: Sequence[str] = CUSTOMERS
) -> dict[str, str]:
    """The headers of a staff principal who may see every customer's clip, one way or another."""
    if kind == "grant":
        for customer in CUSTOMERS:
            grant(live, customer, sub, TICKET)
        return agent(live, sub, TICKET)
    if kind == "legal":
        approve_legal(live.client, live.url, live.env.auth, sub, customers, "SUBPOENA-9")
        purpose = {"X-Access-Purpose": "legal_request", "X-Access-Justification": "SUBPOENA-9"}
        return live.env.auth(sub, "legal", **purpose)
    assert kind == "break_glass"
    return {
        "Authorization": f"Bearer {live.env.token(sub, 'support_lead', ttl=600)}",
        "X-Access-Purpose": "emergency",
        "X-Access-Justification": "INC-9 smoke alarm",
    }


async def burst(url: str, requests: list[tuple[str, str, dict[str, str]]]) -> list[httpx.Response]:
    """Every request at once: (method, path, headers) each, all in flight together."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as http:
        return list(
            await asyncio.gather(
                *(http.request(method, path, headers=headers) for method, path, headers in requests)
            )
        )


def served_customers(responses: list[httpx.Response], ok: int = 200) -> set[str]:
    return {r.url.path.split("/")[3] for r in responses if r.status_code == ok}


@pytest.mark.parametrize("kind", ["grant", "legal", "break_glass"])
def test_a_concurrent_sweep_gets_exactly_the_thresholds_worth_of_customers(running, kind):
    live = running(THRESHOLDS)
    clip = clip_at(0)
    for customer in CUSTOMERS:
        live.env.put_clip(customer, "porch", clip, f"{customer} footage".encode())
        live.env.set_zone(customer, "porch", Zone.OUTDOOR)
    sub = f"sweeper-{kind}"
    headers = sweeper(live, kind, sub)
    requests = [
        ("GET", f"/v1/footage/{CUSTOMERS[i % len(CUSTOMERS)]}/porch/{clip}", headers)
        for i in range(BURST)
    ]

    responses = asyncio.run(burst(live.url, requests))

    assert len(served_customers(responses)) == SUSPEND_AT, Counter(r.status_code for r in responses)
    refused = [r for r in responses if r.status_code != 200]
    assert refused, "the sweep must be stopped"
    assert {r.status_code for r in refused} == {403}
    assert {r.json()["error"]["code"] for r in refused} == {"principal_suspended"}
    assert all("x-audit-event-id" in r.headers for r in responses)
    # The audit log agrees with what left: the allowed decisions name SUSPEND_AT customers.
    decisions = [e for e in events(live, type="access.decision") if e["principal"] == sub]
    allowed = {e["customer_id"] for e in decisions if e["decision"] == "allow"}
    assert allowed == served_customers(responses)
    refusals = [e for e in decisions if e["decision"] == "deny"]
    assert {e["reason"] for e in refusals} == {"principal_suspended"}
    assert len(refusals) == len(refused)
    status = live.client.get(f"/v1/principals/{sub}", headers=analyst(live)).json()
    assert status["status"] == "suspended" and status["reason"].startswith("customer_browsing")
    suspensions = [e for e in events(live, type="principal.suspended")]
    assert [e["detail"]["subject"] for e in suspensions] == [sub]
    assert "customer_browsing" in {f["rule"] for f in open_flags(live, sub)}


def test_admission_refuses_nothing_below_the_threshold(running):
    """Negative: a burst over fewer customers than the threshold is served in full."""
    live = running(THRESHOLDS)
    clip = clip_at(0)
    few = CUSTOMERS[: SUSPEND_AT - 1]
    for customer in few:
        live.env.put_clip(customer, "porch", clip, b"x")
        live.env.set_zone(customer, "porch", Zone.OUTDOOR)
    headers = sweeper(live, "legal", "lou")
    paths = [f"/v1/footage/{few[i % len(few)]}/porch/{clip}" for i in range(30)]
    responses = asyncio.run(burst(live.url, [("GET", path, headers) for path in paths]))
    assert Counter(r.status_code for r in responses) == {200: 30}
    status = live.client.get("/v1/principals/lou", headers=analyst(live)).json()
    assert status["status"] == "active"


def test_customers_reading_their_own_footage_are_never_admitted_against(running):
    """Negative: owners are not staff; a burst of their own requests is never refused."""
    live = running(THRESHOLDS)
    clip = clip_at(0)
    live.env.put_clip("k00", "porch", clip, b"x")
    owner = live.env.auth("owner-k00", "customer", "support_agent", customer_id="k00")
    requests = [("GET", f"/v1/footage/k00/porch/{clip}", owner)] * 30
    assert {r.status_code for r in asyncio.run(burst(live.url, requests))} == {200}


METADATA = (
    ALWAYS_WORKING
    + """
[rules.customer_browsing]
flag_at = 2
suspend_at = 3
"""
)


def test_head_and_missing_clips_count_toward_customer_browsing_over_http(running):
    """Metadata is footage: HEADs and allowed 404s on three customers reach suspend_at = 3."""
    live = running(METADATA)
    clip = clip_at(0)
    for customer in ("m1", "m2", "m3", "m4"):
        live.env.put_clip(customer, "porch", clip, b"x")
        live.env.set_zone(customer, "porch", Zone.OUTDOOR)
    legal = sweeper(live, "legal", "lou", ("m1", "m2", "m3", "m4"))
    assert live.client.head(f"/v1/footage/m1/porch/{clip}", headers=legal).status_code == 200
    assert live.client.head(f"/v1/footage/m2/porch/{clip}", headers=legal).status_code == 200
    missing = clip_at(30)
    assert live.client.get(f"/v1/footage/m3/porch/{missing}", headers=legal).status_code == 404
    assert "customer_browsing" in {f["rule"] for f in open_flags(live, "lou")}
    refused = live.client.get(f"/v1/footage/m4/porch/{clip}", headers=legal)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "principal_suspended"
    summary = live.client.get("/v1/principals/lou", headers=analyst(live)).json()
    assert summary["status"] == "suspended"
    assert summary["activity"]["distinct_customers_last_hour"] == 3
