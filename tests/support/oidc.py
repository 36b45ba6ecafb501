"""A real OpenID Connect provider for the sign-in tests, and a gateway that signs in with it.

tests/oidc/provider.mjs (panva/node-oidc-provider, pinned by tests/oidc/package-lock.json,
installed by `make oidc` with `npm ci`) runs under the machine's Node.js on an ephemeral
loopback port. The gateway's socket is bound first, so the provider's clients can name its
redirect URI; then the gateway starts with FOOTGW_OIDC_* pointing at the provider.

`scripted_login` signs in as a person would, through the provider's own login form, with
httpx instead of a browser (the browser tests do the same with Chromium and Firefox).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from gateway.signin.client import code_challenge
from tests.support.server import Live, LiveServer, hold_lifespan_state, make_env

OIDC_DIR = Path(__file__).parents[1] / "oidc"
RESOURCE = "https://footage.test"
OTHER_RESOURCE = "https://elsewhere.test"
CLIENT_ID = "footgw-console"
PUBLIC_CLIENT_ID = "footgw-cli"
PUBLIC_REDIRECT = "http://127.0.0.1/cli-callback"
ACCOUNTS = {
    "alice": {"roles": ["customer"], "customer_id": "c1"},
    "sam@support": {"roles": ["support_agent"]},
    "ana@security": {"roles": ["security_analyst"]},
}
STARTUP_TIMEOUT = 30.0


def no_provider_reason() -> str | None:
    """Why the provider cannot run here (no node, or `npm ci` not run), or None."""
    if shutil.which("node") is None:
        return "node is not installed: `make oidc` (Node.js 20.19+ and npm, from apt)"
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing: run `make oidc` (npm ci)"
    return None


@dataclass
class Provider:
    """A running oidc-provider: its issuer, and the process to stop."""

    issuer: str
    process: subprocess.Popen[str]
    log: IO[str] | None = None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.log is not None:
            self.log.close()


def start_provider(tmp: Path, config: dict[str, Any], name: str = "provider") -> Provider:
    """Start tests/oidc/provider.mjs with `config`; return once it names its issuer."""
    reason = no_provider_reason()
    if reason:
        pytest.skip(reason)
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    log = (tmp / f"{name}.log").open("w")  # the provider's own errors, for a failure
    process = subprocess.Popen(
        ["node", str(OIDC_DIR / "provider.mjs"), str(path)],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    if not line or not line[0].strip():
        Provider("", process, log).stop()
        raise RuntimeError("the OIDC provider did not start")
    return Provider(json.loads(line[0])["issuer"], process, log)


def provider_config(gateway_url: str, secret: str, ttl: int = 600) -> dict[str, Any]:
    """A confidential client for the gateway, a public one (PKCE, no secret), the accounts."""
    return {
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": secret,
                "redirect_uris": [f"{gateway_url}/auth/callback"],
                "post_logout_redirect_uris": [f"{gateway_url}/console/"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
            {
                "client_id": PUBLIC_CLIENT_ID,
                "token_endpoint_auth_method": "none",
                "application_type": "native",
                "redirect_uris": [PUBLIC_REDIRECT],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
        ],
        "accounts": ACCOUNTS,
        "resources": {RESOURCE: {}, OTHER_RESOURCE: {}},
        "access_token_ttl": ttl,
    }


class BoundLiveServer(LiveServer):
    """LiveServer on a socket bound beforehand (its port is known before the app starts)."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        super().__init__(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )


@dataclass
class OidcGateway:
    """A gateway signing in with a running provider."""

    live: Live
    provider: Provider

    @property
    def url(self) -> str:
        return self.live.url

    def counts(self) -> tuple[int, int]:
        """(logins in progress, sessions) in the gateway's database."""
        signin = self.live.services.signin
        assert signin is not None
        return signin.store.count()


def start_oidc_gateway(
    tmp: Path, *, ttl: int = 600, extra: dict[str, str] | None = None
) -> Iterator[OidcGateway]:
    """Provider + gateway, stopped in reverse order when the generator closes."""
    from gateway.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    gateway_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    secret = "test-client-secret-" + "x" * 24
    try:
        provider = start_provider(tmp, provider_config(gateway_url, secret, ttl))
    except BaseException:  # a provider that did not start (or a skip) leaves no socket open
        sock.close()
        raise
    try:
        secret_file = tmp / "client-secret"
        secret_file.write_text(secret + "\n")
        env = make_env(
            tmp,
            {
                "FOOTGW_JWT_PUBLIC_KEY_FILE": "",
                "FOOTGW_OIDC_ISSUER": provider.issuer,
                "FOOTGW_OIDC_CLIENT_ID": CLIENT_ID,
                "FOOTGW_OIDC_CLIENT_SECRET_FILE": str(secret_file),
                "FOOTGW_OIDC_REDIRECT_URI": f"{gateway_url}/auth/callback",
                "FOOTGW_OIDC_RESOURCE": RESOURCE,
                "FOOTGW_JWT_AUDIENCE": RESOURCE,
                "FOOTGW_JWT_ALGORITHMS": "RS256",
                **(extra or {}),
            },
        )
        app = create_app(env.settings)
        state = hold_lifespan_state(app)
        server = BoundLiveServer(app, sock).start()
        live = Live(env, server, httpx.Client(base_url=server.url, timeout=30.0), state)
        try:
            yield OidcGateway(live, provider)
        finally:
            live.close()
    finally:
        provider.stop()
        sock.close()


# --- a person signing in, scripted over HTTP ---------------------------------------------------

FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)
PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


@dataclass
class Callback:
    """Where the provider sent the browser back: the callback URL and its parameters."""

    url: str
    params: dict[str, str]
    login_cookie: str | None  # the binding cookie the gateway set at /auth/login


def set_cookie_value(response: httpx.Response, name: str) -> str | None:
    """The value a response's Set-Cookie gives `name` (httpx's jar keeps no Secure cookie
    over http, so the gateway's `__Host-` cookies are carried by hand in these tests)."""
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None


def provider_login(browser: httpx.Client, authorize_url: str, login: str) -> str:
    """Follow the provider from its authorization URL through its login form; the URL it
    finally redirects to (off the provider: the client's redirect URI with a code)."""
    issuer = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    url = authorize_url
    for _ in range(12):
        response = browser.get(url)
        if response.status_code in (302, 303):
            url = urljoin(url, response.headers["location"])
            if not url.startswith(issuer):
                return url
            continue
        match = FORM_ACTION.search(response.text)
        assert response.status_code == 200 and match, response.text[:500]
        prompt = PROMPT.search(response.text)
        form = {"prompt": "login", "login": login, "password": "correct horse"}
        if prompt and prompt.group(1) == "consent":  # the provider asks public clients to
            form = {"prompt": "consent"}  # confirm: the person clicks "Continue"
        posted = browser.post(urljoin(url, unescape(match.group(1))), data=form)
        assert posted.status_code in (302, 303), posted.text[:500]
        url = urljoin(url, posted.headers["location"])
    raise AssertionError("the provider never redirected back")


def begin_and_login(gw: OidcGateway, login: str, browser: httpx.Client, nxt: str = "") -> Callback:
    """/auth/login at the gateway, then the provider's login form: the callback to send."""
    started = gw.live.client.get("/auth/login", params={"next": nxt} if nxt else None)
    assert started.status_code == 303, started.text
    binding = set_cookie_value(started, "__Host-footgw_login")
    back = provider_login(browser, started.headers["location"], login)
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    return Callback(back, query, binding)


def finish(gw: OidcGateway, callback: Callback, **override: str | None) -> httpx.Response:
    """Send the callback to the gateway (with the binding cookie), parameters overridden."""
    params = {**callback.params, **override}
    query = {k: v for k, v in params.items() if v is not None}
    headers = {"Cookie": f"__Host-footgw_login={callback.login_cookie}"}
    return gw.live.client.get("/auth/callback", params=query, headers=headers)


def public_client_token(issuer: str, browser: httpx.Client, login: str, resource: str) -> str:
    """An access token for the provider's public client (PKCE, no secret): a bearer token the
    gateway verifies as any other, with no gateway session behind it."""
    verifier = secrets.token_urlsafe(32)
    query = {
        "client_id": PUBLIC_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": PUBLIC_REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
        "resource": resource,
    }
    back = provider_login(browser, f"{issuer}/auth?{urlencode(query)}", login)
    code = parse_qs(urlsplit(back).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": PUBLIC_REDIRECT,
        "client_id": PUBLIC_CLIENT_ID,
        "code_verifier": verifier,
        "resource": resource,
    }
    response = httpx.post(f"{issuer}/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
