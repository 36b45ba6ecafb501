"""Signing in through the identity provider in real browsers (contract §15, docs/console.md).

Chromium (Playwright) and Firefox (WebDriver BiDi) open the console, press "Sign in", fill in
the provider's own login form (panva/node-oidc-provider, tests/support/oidc.py), land on their
role's view, play a clip through a playback URL (the customer from her clip list, the agent
from the staff desk under the customer's grant: POST /v1/playback under the session cookie
with its X-CSRF-Token, then the <video> on /v1/play/…), and sign out at the gateway and at
the provider. The gateway runs on
http://127.0.0.1: its `__Host-` cookies are `Secure`, which both browsers accept on loopback
(a secure context) and which this test would fail without.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from gateway.demo.seeding import clip_bytes
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.browser import Firefox, no_firefox_reason, off_loop, sign_in
from tests.support.oidc import RESOURCE, OidcGateway, public_client_token, start_oidc_gateway
from tests.support.server import make_env, start_live
from tests.support.video import HAS_DATA, PLAY_MUTED, VIDEO, playing_from

pytestmark = pytest.mark.browser


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[OidcGateway]:
    yield from start_oidc_gateway(tmp_path)


CUSTOMER = "c1"  # alice's customer_id at the provider (tests/support/oidc.py ACCOUNTS)
AGENT = "sam@support"
CAMERA = "front-door"
TICKET = "TICKET-17"
TIMEOUT = 20.0  # a second engine on a loaded machine: generous deadlines, never sleeps


def stock(gw: OidcGateway) -> str:
    """alice's camera holds the demo's H.264 clip, and alice grants the agent access to it,
    over HTTP with a token from the provider's public client (no gateway session, so the
    sign-ins below count theirs alone). The clip's name."""
    clip = (datetime.now(UTC) - timedelta(hours=3)).strftime(RECORDED_AT_FORMAT) + ".mp4"
    off_loop(gw.live.env.put_clip, CUSTOMER, CAMERA, clip, clip_bytes())
    gw.live.env.set_zone(CUSTOMER, CAMERA, Zone.OUTDOOR)
    with httpx.Client(timeout=30.0) as at_provider:
        token = public_client_token(gw.provider.issuer, at_provider, "alice", RESOURCE)
    now = datetime.now(UTC)
    body = {
        "grantee": AGENT,
        "purpose": "customer_support",
        "cameras": [CAMERA],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": TICKET,
        "include_private": False,
    }
    auth = {"Authorization": f"Bearer {token}"}
    r = gw.live.client.post("/v1/grants", json=body, headers=auth)
    assert r.status_code == 201, r.text
    assert gw.counts()[1] == 0
    return clip


def wait_until(page: Any, expression: str) -> None:
    """Poll a JS expression until truthy (as a function: the console's CSP forbids eval)."""
    page.wait_for_function(f"() => {expression}", timeout=TIMEOUT * 1000)


def assert_plays(page: Any, base_url: str) -> None:
    """The <video> plays through a playback URL: it has data and its time advances; then Stop
    (a cookie-authenticated DELETE) ends the session."""
    wait_until(page, HAS_DATA)
    src = page.evaluate(f"{VIDEO}.currentSrc")
    assert src.startswith(f"{base_url}/v1/play/"), src
    assert page.evaluate(PLAY_MUTED)
    wait_until(page, playing_from(0))
    assert page.evaluate(f"{VIDEO}.error") is None
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("the playback session has ended")).to_be_visible()


def customer_plays(clip: str) -> Callable[[Any, str], None]:
    def play(page: Any, base_url: str) -> None:
        page.evaluate("location.hash = '#/cameras'")
        page.get_by_role("button", name="Show clips").click()
        page.get_by_role("button", name=f"Play clip {clip}").click()
        assert_plays(page, base_url)

    return play


def agent_plays(clip: str) -> Callable[[Any, str], None]:
    def play(page: Any, base_url: str) -> None:
        page.evaluate("location.hash = '#/desk'")
        page.get_by_label("Justification").fill(f"{TICKET} doorbell offline")
        page.get_by_role("button", name="Declare").click()
        page.get_by_role("button", name=f"Open {CUSTOMER}'s footage (ticket {TICKET})").click()
        page.get_by_role("button", name=f"Play clip {clip}").click()
        assert_plays(page, base_url)

    return play


def provider_login(page: Any, login: str) -> None:
    """The person at the provider's login form."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")


def sign_in_and_out(
    page: Any,
    gw: OidcGateway,
    login: str,
    route: str,
    view: str,
    play: Callable[[Any, str], None],
) -> None:
    page.goto(f"{gw.url}/console/{route}")
    page.wait_for_selector("#provider-button")
    assert page.locator("#signin-form").is_hidden()  # no token pasting beside a provider
    page.click("#provider-button")
    provider_login(page, login)
    page.wait_for_url(f"{gw.url}/console/{route or '#/'}*")
    page.wait_for_selector("#view h1")
    assert page.locator("#view h1").inner_text() == view
    assert login in page.locator("#who").inner_text()
    # The page holds no token: the session cookie is HttpOnly, nothing is stored.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0
    assert "code=" not in page.url and "state=" not in page.url
    assert gw.counts()[1] == 1  # one session (a login the last round began may wait)
    play(page, gw.url)

    page.click("#sign-out")
    page.wait_for_url(f"{gw.provider.issuer}/session/end*")  # the provider asks to confirm
    page.click("button[autofocus]")  # "Yes, sign me out"
    page.wait_for_url(f"{gw.url}/console/*")
    page.wait_for_selector("#provider-button")
    assert gw.counts()[1] == 0
    # The provider's session is over too: signing in again asks for the login again.
    page.click("#provider-button")
    page.wait_for_selector("input[name=login]")


def test_a_customer_and_an_agent_sign_in_with_chromium_play_a_clip_and_sign_out(gw, page):
    clip = stock(gw)
    served: list[int] = []  # the gateway's answers on playback URLs, in order
    page.on("response", lambda r: served.append(r.status) if "/v1/play/" in r.url else None)
    sign_in_and_out(page, gw, "alice", "#/access", "Who looked at my footage", customer_plays(clip))
    assert served and set(served) <= {200, 206}, served
    before = len(served)
    sign_in_and_out(page, gw, AGENT, "", "Grants addressed to you", agent_plays(clip))
    assert served[before:] and set(served[before:]) <= {200, 206}, served


def test_an_expired_session_signs_in_again_on_the_same_page(tmp_path, page):
    started = start_oidc_gateway(tmp_path, ttl=6)
    gw = next(started)
    try:
        callbacks: list[str] = []
        page.on("request", lambda r: callbacks.append(r.url) if "/auth/callback" in r.url else None)
        page.goto(f"{gw.url}/console/#/cameras")
        page.click("#provider-button")
        provider_login(page, "alice")
        page.wait_for_selector("#view h1:has-text('My cameras')")
        page.evaluate("location.hash = '#/access'")  # the person moves on, then waits
        page.wait_for_selector("#view h1:has-text('Who looked')")
        deadline = time.monotonic() + 30
        while len(callbacks) < 2:  # the console went back through the provider by itself
            assert time.monotonic() < deadline, callbacks
            page.wait_for_timeout(200)
        page.wait_for_selector("#view h1:has-text('Who looked')")
        assert page.url.endswith("/console/#/access")
        assert page.locator("input[name=login]").count() == 0  # no second login form
    finally:
        started.close()


def test_token_links_are_refused_outside_dev_mode(tmp_path, page):
    env = make_env(tmp_path)
    token = env.token("alice", "customer", customer_id="c1")
    with start_live(env) as live:
        page.goto(f"{live.url}/console/#token={token}")
        page.wait_for_selector("#signin-notice:has-text('refused')")
        assert "token" not in page.url
        assert page.evaluate("sessionStorage.length") == 0
        assert page.locator("#signin-form").is_visible()  # pasting stays, without a provider
        sign_in(page, live.url, token, "/access")  # the tests' helper pastes it here
        page.wait_for_selector("#view h1:has-text('Who looked')")


def test_token_links_are_refused_beside_a_provider(gw, page):
    page.goto(f"{gw.url}/console/#token=a.b.c")
    page.wait_for_selector("#signin-notice:has-text('refused')")
    assert page.evaluate("sessionStorage.length") == 0


# --- Firefox ---------------------------------------------------------------------------------


async def settle(ff: Firefox, expression: str, timeout: float = 15.0) -> Any:
    """wait_for across navigations (an evaluate during one fails; try again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await ff.evaluate(expression)
        except RuntimeError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        await asyncio.sleep(0.1)


def click(label: str) -> str:
    """JS: click the enabled button with this accessible label (aria-label or its text)."""
    name = json.dumps(label)
    return (
        "(() => { const b = [...document.querySelectorAll('button')].find("
        f"(b) => (b.getAttribute('aria-label') || b.textContent) === {name});"
        " if (!b || b.disabled) return false; b.click(); return true; })()"
    )


async def firefox_plays(ff: Firefox, base: str) -> None:
    """As assert_plays, in Firefox: data, a /v1/play/ URL, time advancing; then Stop."""
    await ff.wait_for(HAS_DATA, TIMEOUT)
    assert (await ff.evaluate(f"{VIDEO}.currentSrc")).startswith(f"{base}/v1/play/")
    assert await ff.evaluate(PLAY_MUTED)
    await ff.wait_for(playing_from(0), TIMEOUT)
    assert await ff.evaluate(f"{VIDEO}.error === null")
    assert await ff.wait_for(click("Stop"), TIMEOUT)
    ended = "document.body.innerText.includes('the playback session has ended')"
    await ff.wait_for(f"{VIDEO} === null && {ended}", TIMEOUT)


async def firefox_customer_plays(ff: Firefox, base: str, clip: str) -> None:
    await ff.evaluate("location.hash = '#/cameras'")
    assert await ff.wait_for(click("Show clips"), TIMEOUT)
    assert await ff.wait_for(click(f"Play clip {clip}"), TIMEOUT)
    await firefox_plays(ff, base)


async def firefox_agent_plays(ff: Firefox, base: str, clip: str) -> None:
    await ff.evaluate("location.hash = '#/desk'")
    form = "document.querySelector('form[aria-labelledby=purpose-title]')"
    await ff.wait_for(form, TIMEOUT)
    await ff.evaluate(
        f"(() => {{ const f = {form};"
        f" f.querySelector('input[name=justification]').value = {json.dumps(TICKET)};"
        " f.requestSubmit(); return true; })()"
    )
    await ff.wait_for("document.querySelector('.declared') !== null", TIMEOUT)
    assert await ff.wait_for(click(f"Open {CUSTOMER}'s footage (ticket {TICKET})"), TIMEOUT)
    assert await ff.wait_for(click(f"Play clip {clip}"), TIMEOUT)
    await firefox_plays(ff, base)


async def firefox_flow(gw: OidcGateway, profile: Path, clip: str) -> None:
    async with Firefox(profile) as ff:
        for login, route, view, play in (
            ("alice", "#/access", "Who looked at my footage", firefox_customer_plays),
            (AGENT, "#/grants", "Grants addressed to you", firefox_agent_plays),
        ):
            await ff.goto(f"{gw.url}/console/{route}")
            await settle(ff, "!document.getElementById('provider-button').closest('[hidden]')")
            await ff.evaluate("document.getElementById('provider-button').click()")
            await settle(ff, "document.querySelector('input[name=login]') !== null")
            await ff.evaluate(
                f"document.querySelector('input[name=login]').value = {json.dumps(login)};"
                "document.querySelector('input[name=password]').value = 'correct horse';"
                "document.querySelector('button[type=submit]').click()"
            )
            heading = f"document.querySelector('#view h1')?.textContent === {json.dumps(view)}"
            await settle(ff, heading)
            assert await ff.evaluate("location.hash") == route
            assert await ff.evaluate("document.cookie") == ""
            assert await ff.evaluate("sessionStorage.length + localStorage.length") == 0
            assert gw.counts()[1] == 1  # one session (a login the last round began may wait)
            await play(ff, gw.url, clip)
            await ff.evaluate("document.getElementById('sign-out').click()")
            await settle(ff, "location.pathname === '/session/end'")
            await ff.evaluate("document.querySelector('button[autofocus]').click()")
            await settle(
                ff,
                "location.pathname === '/console/' && !!document.getElementById('provider-button')",
            )
            assert gw.counts()[1] == 0


@pytest.mark.skipif(no_firefox_reason() is not None, reason=str(no_firefox_reason()))
def test_a_customer_and_an_agent_sign_in_with_firefox_play_a_clip_and_sign_out(gw, tmp_path):
    clip = stock(gw)
    profile = tmp_path / "firefox"
    profile.mkdir()
    off_loop(asyncio.run, firefox_flow(gw, profile, clip))  # Playwright holds the loop
