"""gateway/ratelimit.py and what a customer is shown of unauthenticated attempts.

Unauthenticated footage requests are limited per client address (429 `rate_limited`, counted
in metrics, not audited one by one); the ones let through are audited as evidence, but their
free text is never shown to the customer as a staff statement (docs/security.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.ratelimit import AttemptLimiter
from tests.support.faults import trace
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = b"FRONT-DOOR-BYTES" * 1024
LIE = "Support here: CASE-1. Your camera is hacked, call +1 555 0100 now"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_rate_and_no_more() -> None:
    clock = Clock()
    limiter = AttemptLimiter(6, clock)
    assert [limiter.admit("10.0.0.1") for _ in range(8)] == [True] * 6 + [False] * 2
    assert limiter.admit("10.0.0.2")  # another address has its own bucket
    assert limiter.retry_after("10.0.0.1") == 10  # 6 a minute: one every 10 s
    clock.now += 9.9
    assert not limiter.admit("10.0.0.1")
    clock.now += 0.2
    assert limiter.admit("10.0.0.1") and not limiter.admit("10.0.0.1")
    clock.now += 3600  # a long quiet spell refills to the rate, not beyond it
    assert [limiter.admit("10.0.0.1") for _ in range(7)] == [True] * 6 + [False]


def test_an_ipv6_network_shares_one_bucket() -> None:
    """One host holds a whole /64 (RFC 4291 §2.5.4): a new source address per request must not
    be a new bucket. IPv4 addresses, and IPv4 written as IPv6, are one bucket each."""
    limiter = AttemptLimiter(2, Clock())
    assert [limiter.admit(f"2001:db8:0:1::{n:x}") for n in range(1, 5)] == [True] * 2 + [False] * 2
    assert limiter.admit("2001:db8:0:2::1")  # the next /64 is someone else
    assert [limiter.admit(a) for a in ("::ffff:192.0.2.7", "192.0.2.7", "192.0.2.7")] == [
        True,
        True,
        False,
    ]
    assert limiter.admit("192.0.2.8")
    assert limiter.retry_after("2001:db8:0:1::99") == 30  # the network's bucket, 2 a minute


def test_the_addresses_kept_are_bounded() -> None:
    limiter = AttemptLimiter(1, Clock(), max_addresses=3)
    for n in range(100):
        assert limiter.admit(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets) == 3
    assert not limiter.admit("10.0.0.99")  # the most recent ones are the ones kept


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Live]:
    env = make_env(tmp_path, {"FOOTGW_UNAUTHENTICATED_PER_MINUTE": "5"})
    with start_live(env) as live:
        live.services.flow.attempts.clock = Clock()  # time stands still: no refill mid-test
        live.env.put_clip("c1", "front", CLIP, DATA)
        yield live


async def _many(url: str, count: int, headers: dict[str, str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        return list(
            await asyncio.gather(*(client.get(PATH, headers=headers) for _ in range(count)))
        )


def unauthenticated_decisions(live: Live) -> list[dict]:
    r = live.client.get(
        "/v1/audit/events",
        params={"type": "access.decision", "decision": "deny", "limit": 1000},
        headers=live.env.auth("ana", "security_analyst"),
    )
    return [e for e in r.json()["events"] if e["reason"] == "unauthenticated"]


def limited_count(live: Live) -> float:
    value = live.services.metrics.registry.get_sample_value(
        "footgw_unauthenticated_rate_limited_total"
    )
    return value or 0.0


def test_forty_unauthenticated_requests_at_once_are_limited(limited: Live) -> None:
    live = limited
    headers = {"X-Access-Purpose": "customer_support", "X-Access-Justification": LIE}
    responses = asyncio.run(_many(live.url, 40, headers))
    refused = [r for r in responses if r.status_code == 401]
    limited_out = [r for r in responses if r.status_code == 429]
    assert (len(refused), len(limited_out)) == (5, 35)
    for r in limited_out:
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["cache-control"] == "private, no-store"
        assert "x-audit-event-id" not in r.headers  # counted, not audited one by one
        assert trace(live.env.settings.database_url, r.headers["x-request-id"]) == []
        assert DATA[:32] not in r.content
    assert len(unauthenticated_decisions(live)) == 5  # the evidence: every attempt let through
    assert limited_count(live) == 35
    # A signed-in caller at the same address is not held back by the attempts.
    owner = live.env.auth("alice", "customer", customer_id="c1")
    assert live.client.get(PATH, headers=owner).content == DATA


def test_the_limit_follows_the_client_address_through_trusted_proxies(tmp_path: Path) -> None:
    extra = {"FOOTGW_UNAUTHENTICATED_PER_MINUTE": "2", "FOOTGW_TRUSTED_PROXIES": "127.0.0.1"}
    with start_live(make_env(tmp_path, extra)) as live:
        live.services.flow.attempts.clock = Clock()
        codes = [
            live.client.get(PATH, headers={"X-Forwarded-For": ip}).status_code
            for ip in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2")
        ]
        assert codes == [401, 401, 429, 401]


def test_a_forged_forwarded_for_does_not_escape_the_limit(tmp_path: Path) -> None:
    with start_live(make_env(tmp_path, {"FOOTGW_UNAUTHENTICATED_PER_MINUTE": "2"})) as live:
        live.services.flow.attempts.clock = Clock()
        codes = [
            live.client.get(PATH, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(4)
        ]
        assert codes == [401, 401, 429, 429]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (PATH, {}),  # no token at all
        (PATH, {"Authorization": "Bearer forged"}),
        ("/v1/footage/c1/front/a/b", {}),  # a path that names no clip
        ("/v1/footage/c1/front/%2e", {}),  # an escaped path
    ],
)
def test_unauthenticated_deletes_draw_from_the_same_limit(
    limited: Live, path: str, headers: dict[str, str]
) -> None:
    """A DELETE is a footage request too: without a valid token it must not be a way around
    the limit into the audit log and the customer's access log."""
    live = limited
    codes = [live.client.delete(path, headers=headers).status_code for _ in range(8)]
    assert codes[5:] == [429, 429, 429], codes
    assert len(unauthenticated_decisions(live)) <= 5
    assert limited_count(live) == 3
    owner = live.env.auth("alice", "customer", customer_id="c1")
    assert live.client.get(PATH, headers=owner).content == DATA  # the owner is not held back


def test_the_customer_never_reads_unauthenticated_text_as_a_staff_statement(live: Live) -> None:
    live.env.put_clip("c1", "front", CLIP, DATA)
    anonymous = live.client.get(
        PATH,
        headers={
            "Authorization": "Bearer forged",
            "X-Access-Purpose": "customer_support",
            "X-Access-Justification": LIE,
        },
    )
    assert anonymous.status_code == 401
    owner = live.env.auth("alice", "customer", customer_id="c1")
    staff = live.env.auth(
        "sam",
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-7 check"},
    )
    assert live.client.get(PATH, headers=staff).status_code == 403  # no grant: denied, real text

    log = {
        e["event_id"]: e
        for e in live.client.get("/v1/me/access-log", headers=owner).json()["events"]
    }
    shown = log[anonymous.headers["x-audit-event-id"]]
    assert shown["principal"] is None and shown["authenticated"] is False
    assert shown["purpose"] is None and shown["justification"] is None
    assert LIE not in str(log)
    [said] = [e for e in log.values() if e["principal"] == "sam"]
    assert said["authenticated"] is True and said["justification"] == "TICKET-7 check"
    assert said["purpose"] == "customer_support"
    # The attempt stays in the audit log, as sent: it is evidence.
    [kept] = trace(live.env.settings.database_url, anonymous.headers["x-request-id"])
    assert kept["justification"] == LIE and kept["purpose"] == "customer_support"


@pytest.mark.parametrize("roles", [("customer",), (), ("Security team",)])
def test_text_from_someone_who_is_not_staff_is_not_shown_as_a_staff_statement(
    live: Live, roles: tuple[str, ...]
) -> None:
    """Another customer (or a token with no staff role) is signed in, but purpose and
    justification are staff statements (contract §6): theirs is evidence, not for the page."""
    live.env.put_clip("c1", "front", CLIP, DATA)
    mallory = live.env.auth(
        "mallory",
        *roles,
        customer_id="c2",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": LIE},
    )
    attempt = live.client.get(PATH, headers=mallory)
    assert attempt.status_code == 403
    owner = live.env.auth("alice", "customer", customer_id="c1")
    log = live.client.get("/v1/me/access-log", headers=owner).json()["events"]
    [shown] = [e for e in log if e["event_id"] == attempt.headers["x-audit-event-id"]]
    assert shown["principal"] == "mallory"  # who it was is a verified fact
    assert shown["purpose"] is None and shown["justification"] is None
    assert LIE not in str(log)
    [kept] = trace(live.env.settings.database_url, attempt.headers["x-request-id"])
    assert kept["justification"] == LIE  # still evidence in the audit log
