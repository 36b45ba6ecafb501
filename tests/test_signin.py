"""Sign-in through a real OpenID Connect provider (contract §15), over HTTP.

The provider is panva/node-oidc-provider (tests/support/oidc.py); the person's part is its
login form, filled in by httpx. The browser tests (tests/test_signin_browser.py) do the same
in Chromium and Firefox. Every refusal here is checked to leave no session behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
import structlog.testing

from gateway.db import oidc_logins
from tests.support.oidc import (
    CLIENT_ID,
    OTHER_RESOURCE,
    RESOURCE,
    OidcGateway,
    begin_and_login,
    finish,
    provider_config,
    public_client_token,
    set_cookie_value,
    start_oidc_gateway,
    start_provider,
)

SESSION = "__Host-footgw_session"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[OidcGateway]:
    yield from start_oidc_gateway(tmp_path)


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """The person's browser at the provider: it keeps the provider's cookies."""
    with httpx.Client(timeout=30.0) as client:
        yield client


def signed_in(gw: OidcGateway, browser: httpx.Client, login: str, nxt: str = "") -> str:
    """Sign `login` in; the session cookie's value."""
    response = finish(gw, begin_and_login(gw, login, browser, nxt))
    assert response.status_code == 303, response.text
    value = set_cookie_value(response, SESSION)
    assert value
    return value


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION}={session}"}


def grant_body() -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "grantee": "sam@support",
        "purpose": "customer_support",
        "cameras": ["*"],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": "T-1",
        "include_private": False,
    }


def test_a_customer_signs_in_uses_the_api_by_cookie_and_signs_out(gw, browser):
    response = finish(gw, begin_and_login(gw, "alice", browser, "#/grants"))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/#/grants"  # back where they were
    assert response.headers["cache-control"] == "no-store"
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION))
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute.lower() in header.lower(), header
    assert "domain" not in header.lower()
    session = set_cookie_value(response, SESSION)
    assert session and gw.counts() == (0, 1)

    me = gw.live.client.get("/auth/session", headers=cookie(session))
    assert me.status_code == 200
    body = me.json()
    assert (body["sub"], body["roles"], body["customer_id"]) == ("alice", ["customer"], "c1")
    assert "access_token" not in me.text and session not in me.text  # no token reaches the page
    csrf = body["csrf_token"]

    # Footage by cookie, as a <video> element would fetch it: the same flow, audited as alice.
    gw.live.env.put_clip("c1", "front", "20261127T101500Z.mp4", b"\x00" * 4096)
    clip = gw.live.client.get("/v1/footage/c1/front/20261127T101500Z.mp4", headers=cookie(session))
    assert clip.status_code == 200 and len(clip.content) == 4096
    log = gw.live.client.get("/v1/me/access-log", headers=cookie(session))
    assert log.status_code == 200
    assert [e["principal"] for e in log.json()["events"]] == ["alice"]
    write = {**cookie(session), "X-CSRF-Token": csrf, "Origin": gw.url}
    created = gw.live.client.post("/v1/grants", json=grant_body(), headers=write)
    assert created.status_code == 201, created.text

    out = gw.live.client.post("/auth/logout", headers=write)
    assert out.status_code == 200
    end = out.json()["end_session_url"]
    assert end.startswith(gw.provider.issuer + "/session/end?")
    assert "id_token_hint" not in end  # no token in a URL
    assert parse_qs(urlsplit(end).query)["client_id"] == [CLIENT_ID]
    assert gw.counts() == (0, 0)
    assert gw.live.client.get("/auth/session", headers=cookie(session)).status_code == 401
    assert gw.live.client.get("/v1/me/access-log", headers=cookie(session)).status_code == 401


def test_a_support_agent_signs_in_with_their_role(gw, browser):
    session = signed_in(gw, browser, "sam@support")
    body = gw.live.client.get("/auth/session", headers=cookie(session)).json()
    assert (body["sub"], body["roles"], body["customer_id"]) == (
        "sam@support",
        ["support_agent"],
        None,
    )


def test_a_wrong_state_is_refused_and_leaves_no_session(gw, browser):
    callback = begin_and_login(gw, "alice", browser)
    for state in ("not-the-state", "", None):
        refused = finish(gw, callback, state=state)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "sign_in_failed"
        assert set_cookie_value(refused, SESSION) is None
    assert gw.counts() == (1, 0)  # the real login is still waiting, untouched


def test_a_callback_in_another_browser_is_refused(gw, browser):
    """Login CSRF: someone else's code and state, sent to a browser that began no login."""
    callback = begin_and_login(gw, "alice", browser)
    refused = gw.live.client.get("/auth/callback", params=callback.params)  # no binding cookie
    assert refused.status_code == 400
    assert gw.counts() == (0, 0)  # the state is spent: the login cannot be finished anywhere
    assert finish(gw, callback).status_code == 400
    callback = begin_and_login(gw, "alice", browser)
    other = {"Cookie": "__Host-footgw_login=someone-elses"}
    assert (
        gw.live.client.get("/auth/callback", params=callback.params, headers=other).status_code
        == 400
    )
    assert gw.counts() == (0, 0)


def test_a_replayed_code_is_refused(gw, browser):
    callback = begin_and_login(gw, "alice", browser)
    assert finish(gw, callback).status_code == 303
    assert finish(gw, callback).status_code == 400  # same state and code: the state is spent
    assert gw.counts() == (0, 1)
    # The same code under a fresh login's state: the provider refuses it (used, and bound to
    # the first login's PKCE challenge).
    second = begin_and_login(gw, "alice", browser)
    replayed = finish(gw, second, code=callback.params["code"])
    assert replayed.status_code == 400
    assert gw.counts() == (0, 1)


def test_pkce_is_enforced_missing_or_wrong_verifier(gw, browser):
    token_endpoint = f"{gw.provider.issuer}/token"
    secret = (gw.live.env.settings.oidc.client_secret_file).read_text().strip()  # type: ignore[union-attr]
    for verifier in (None, secrets.token_urlsafe(32)):
        callback = begin_and_login(gw, "alice", browser)
        form = {
            "grant_type": "authorization_code",
            "code": callback.params["code"],
            "redirect_uri": f"{gw.url}/auth/callback",
            "resource": RESOURCE,
        }
        if verifier is not None:
            form["code_verifier"] = verifier
        direct = httpx.post(token_endpoint, data=form, auth=(CLIENT_ID, secret))
        assert direct.status_code == 400 and direct.json()["error"] == "invalid_grant", direct.text
    # And through the gateway: a login whose stored verifier is not the one it sent the
    # challenge for gets no session.
    callback = begin_and_login(gw, "alice", browser)
    with gw.live.services.engine.begin() as conn:
        conn.execute(sa.update(oidc_logins).values(code_verifier=secrets.token_urlsafe(32)))
    assert finish(gw, callback).status_code == 400
    assert gw.counts()[1] == 0


def test_an_answer_naming_another_issuer_is_refused(gw, browser):
    callback = begin_and_login(gw, "alice", browser)
    assert finish(gw, callback, iss="http://127.0.0.1:1/evil").status_code == 400
    callback = begin_and_login(gw, "alice", browser)
    assert finish(gw, callback, iss=None).status_code == 400  # the provider always names itself
    assert gw.counts() == (0, 0)


def test_tokens_from_another_audience_or_issuer_are_refused(gw, browser, tmp_path):
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    good = public_client_token(gw.provider.issuer, browser, "alice", RESOURCE)
    assert gw.live.client.get("/v1/me/access-log", headers=bearer(good)).status_code == 200
    other_aud = public_client_token(gw.provider.issuer, browser, "alice", OTHER_RESOURCE)
    assert gw.live.client.get("/v1/me/access-log", headers=bearer(other_aud)).status_code == 401
    elsewhere = start_provider(tmp_path, provider_config(gw.url, "x" * 32), "other-provider")
    try:
        with httpx.Client(timeout=30.0) as other_browser:
            foreign = public_client_token(elsewhere.issuer, other_browser, "alice", RESOURCE)
    finally:
        elsewhere.stop()
    assert gw.live.client.get("/v1/me/access-log", headers=bearer(foreign)).status_code == 401
    assert gw.counts()[1] == 0


def test_a_login_whose_access_token_has_another_audience_starts_no_session(tmp_path, browser):
    """The callback verifies the access token as every bearer token is verified."""
    started = start_oidc_gateway(tmp_path, extra={"FOOTGW_JWT_AUDIENCE": OTHER_RESOURCE + "/x"})
    gw = next(started)
    try:
        callback = begin_and_login(gw, "alice", browser)
        assert finish(gw, callback).status_code == 400
        assert gw.counts() == (0, 0)
    finally:
        started.close()


def test_cookie_authenticated_cross_site_requests_are_refused(gw, browser):
    session = signed_in(gw, browser, "alice")
    csrf = gw.live.client.get("/auth/session", headers=cookie(session)).json()["csrf_token"]
    attempts = [
        {},  # a form POST from anywhere: no X-CSRF-Token
        {"X-CSRF-Token": "guessed"},
        {"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        {"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"},
    ]
    for extra in attempts:
        refused = gw.live.client.post(
            "/v1/grants", json=grant_body(), headers={**cookie(session), **extra}
        )
        assert refused.status_code == 403, (extra, refused.text)
        assert refused.json()["error"]["code"] == "csrf_refused"
    read = gw.live.client.get(
        "/v1/me/access-log", headers={**cookie(session), "Sec-Fetch-Site": "cross-site"}
    )
    assert read.status_code == 403
    listed = gw.live.client.get("/v1/grants", headers=cookie(session))
    assert listed.status_code == 200 and listed.json()["grants"] == []  # nothing was created
    # Sign-out is a write too: without the token it is refused and the session stays.
    assert gw.live.client.post("/auth/logout", headers=cookie(session)).status_code == 403
    assert gw.counts() == (0, 1)


def test_sign_in_settings_are_reported_to_the_console(gw, live):
    assert gw.live.client.get("/auth/config").json() == {
        "provider": True,
        "token_handover": False,
        "paste": False,
    }
    assert live.client.get("/auth/config").json()["provider"] is False
    assert live.client.get("/auth/login").status_code == 404


def test_no_token_code_or_cookie_reaches_the_log(gw, browser):
    with structlog.testing.capture_logs() as entries:
        callback = begin_and_login(gw, "alice", browser)
        response = finish(gw, callback)
        session = set_cookie_value(response, SESSION)
        assert session
        assert gw.live.client.get("/v1/me/access-log", headers=cookie(session)).status_code == 200
        refused = finish(gw, callback)  # a replay: refused, and the refusal is logged
        assert refused.status_code == 400
    with gw.live.services.engine.connect() as conn:
        access = conn.execute(sa.text("SELECT access_token FROM console_sessions")).scalar_one()
    logged = repr(entries)
    assert "signin.session_started" in logged and "signin.refused" in logged  # logs were seen
    for secret in (access, session, callback.params["code"], callback.login_cookie):
        assert secret and secret not in logged


def test_sign_ins_begun_are_limited_per_address(tmp_path):
    """Each /auth/login writes a row before anyone signed in: a flood gets 429, not rows."""
    started = start_oidc_gateway(tmp_path, extra={"FOOTGW_UNAUTHENTICATED_PER_MINUTE": "3"})
    gw = next(started)
    try:
        answers = [gw.live.client.get("/auth/login").status_code for _ in range(5)]
        assert answers == [303, 303, 303, 429, 429]
        assert gw.counts() == (3, 0)
    finally:
        started.close()
