"""A JWKS endpoint that hangs or fails, against a running gateway.

No event-loop stall: while a token with an unknown kid waits on a hanging fetch, /healthz and
other callers are answered promptly. Last good keys are kept while the endpoint fails, for a
bounded time (then nothing verifies), and the gateway recovers by itself when it answers again.

The key source's clock is moved by hand (it is injected, like every clock the authenticator
uses) so that "five minutes later" and "an hour later" take no time at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.jwtkeys import JwksKeys
from tests.support.faults import assert_unauthenticated, services_of
from tests.support.jwks import JwksServer, serve_jwks
from tests.support.server import Live, make_env, start_live
from tests.support.tokens import Keypair, claims, jwks, make_keypair, sign

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = b"NURSERY" * 4096
# The hang tests hold the fetch until they release it: "meanwhile" is then a fact the test
# arranges, not a latency it measures (the fetch timeout itself: tests/test_authn.py).
HELD = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> Iterator[tuple[JwksServer, Keypair]]:
    key = make_keypair("ed25519", "k1")
    with serve_jwks(jwks(key)) as server:
        yield server, key


@pytest.fixture
def jwks_live(tmp_path, idp) -> Iterator[tuple[Live, JwksServer, Keypair, Clock]]:
    server, key = idp
    env = make_env(tmp_path, {"FOOTGW_JWT_JWKS_URL": server.url, "FOOTGW_JWT_PUBLIC_KEY_FILE": ""})
    env.put_clip("c1", "front", CLIP, DATA)
    live = start_live(env)
    keys = services_of(live).flow.authn._keys
    assert isinstance(keys, JwksKeys)
    clock = Clock()
    keys._clock = clock  # the key source's injected clock, moved by hand below
    keys._fetch_timeout = keys._client.timeout = HELD
    try:
        yield live, server, key, clock
    finally:
        server.release.set()
        live.client.close()
        live.server.stop()


def view(live: Live, key: Keypair, sub: str) -> httpx.Response:
    token = sign(claims(sub, ("customer",), "c1"), key)  # a new token: never a cache hit
    return live.client.get(PATH, headers={"Authorization": f"Bearer {token}"})


def in_background(func: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        out["response"] = func()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_hanging_jwks_never_stalls_the_event_loop(jwks_live) -> None:
    live, server, key, _ = jwks_live
    server.mode = "hang"
    waiting, out = in_background(lambda: view(live, key, "alice"))
    assert server.hanging.wait(10), "the fetch never reached the endpoint"
    # A second unknown-kid caller is refused while the fetch hangs: one fetch at a time,
    # never a queue behind it.
    second = view(live, make_keypair("ed25519", "k2"), "mallory")
    with httpx.Client(base_url=live.url, timeout=10) as c:
        assert [c.get("/healthz").status_code for _ in range(3)] == [200] * 3
    assert waiting.is_alive() and server.hits == 1  # all of that while the fetch hung
    server.release.set()  # the endpoint hangs up: the fetch fails
    waiting.join(timeout=15)
    assert_unauthenticated(live.env.settings.database_url, out["response"], DATA)
    assert_unauthenticated(live.env.settings.database_url, second, DATA)
    assert server.hits == 1


def test_a_failing_jwks_keeps_the_last_good_keys_for_a_bounded_time(jwks_live) -> None:
    live, server, key, clock = jwks_live
    assert view(live, key, "alice").status_code == 200
    server.mode = "fail"
    clock.now += 301  # the set is due for refresh; the refresh fails
    hits = server.hits
    kept = view(live, key, "alice-2")
    assert kept.status_code == 200 and kept.content == DATA
    assert server.hits == hits + 1  # it did try
    clock.now += 3600  # the last good set is now too old to trust
    assert_unauthenticated(live.env.settings.database_url, view(live, key, "alice-3"), DATA)
    server.mode = "serve"
    clock.now += 11  # past the refresh rate limit
    again = view(live, key, "alice-4")
    assert again.status_code == 200 and again.content == DATA  # recovered, no restart


def test_a_refresh_that_hangs_still_serves_known_keys_promptly(jwks_live) -> None:
    live, server, key, clock = jwks_live
    assert view(live, key, "alice").status_code == 200
    server.mode = "hang"
    clock.now += 301  # due for refresh, and the refresh will hang
    waiting, out = in_background(lambda: view(live, key, "alice-2"))
    assert server.hanging.wait(10), "the refresh never reached the endpoint"
    # Others, meanwhile, are not held up: served with the kept keys while the refresh hangs.
    served = [view(live, key, f"bob-{i}").status_code for i in range(5)]
    assert served == [200] * 5
    assert waiting.is_alive() and server.hits == 2
    server.release.set()
    waiting.join(timeout=15)
    assert out["response"].status_code == 200  # the refresher itself is served with kept keys
