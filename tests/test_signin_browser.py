"""Signing in through the identity provider in real browsers (contract §15, docs/console.md).

Chromium (Playwright) and Firefox (WebDriver BiDi) open the console, press "Sign in", fill in
the provider's own login form (panva/node-oidc-provider, tests/support/oidc.py), land on their
role's view, and sign out at the gateway and at the provider. The gateway runs on
http://127.0.0.1: its `__Host-` cookies are `Secure`, which both browsers accept on loopback
(a secure context) and which this test would fail without.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Firefox, no_firefox_reason, off_loop, sign_in
from tests.support.oidc import OidcGateway, start_oidc_gateway
from tests.support.server import make_env, start_live

pytestmark = pytest.mark.browser


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[OidcGateway]:
    yield from start_oidc_gateway(tmp_path)


def provider_login(page: Any, login: str) -> None:
    """The person at the provider's login form."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")


def sign_in_and_out(page: Any, gw: OidcGateway, login: str, route: str, view: str) -> None:
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

    page.click("#sign-out")
    page.wait_for_url(f"{gw.provider.issuer}/session/end*")  # the provider asks to confirm
    page.click("button[autofocus]")  # "Yes, sign me out"
    page.wait_for_url(f"{gw.url}/console/*")
    page.wait_for_selector("#provider-button")
    assert gw.counts()[1] == 0
    # The provider's session is over too: signing in again asks for the login again.
    page.click("#provider-button")
    page.wait_for_selector("input[name=login]")


def test_a_customer_and_an_agent_sign_in_with_chromium_and_sign_out(gw, page):
    sign_in_and_out(page, gw, "alice", "#/access", "Who looked at my footage")
    sign_in_and_out(page, gw, "sam@support", "", "Grants addressed to you")


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


async def firefox_flow(gw: OidcGateway, profile: Path) -> None:
    async with Firefox(profile) as ff:
        for login, route, view in (
            ("alice", "#/access", "Who looked at my footage"),
            ("sam@support", "#/grants", "Grants addressed to you"),
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
            await ff.evaluate("document.getElementById('sign-out').click()")
            await settle(ff, "location.pathname === '/session/end'")
            await ff.evaluate("document.querySelector('button[autofocus]').click()")
            await settle(
                ff,
                "location.pathname === '/console/' && !!document.getElementById('provider-button')",
            )
            assert gw.counts()[1] == 0


@pytest.mark.skipif(no_firefox_reason() is not None, reason=str(no_firefox_reason()))
def test_a_customer_and_an_agent_sign_in_with_firefox_and_sign_out(gw, tmp_path):
    profile = tmp_path / "firefox"
    profile.mkdir()
    off_loop(asyncio.run, firefox_flow(gw, profile))  # Playwright holds the loop
