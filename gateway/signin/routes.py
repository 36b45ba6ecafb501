"""The /auth/* routes: sign-in configuration, login, callback, session and sign-out (§15).

None of them takes a bearer token, and none puts one in a response body, a URL or a log. Every
response is `Cache-Control: no-store` and `Referrer-Policy: no-referrer` (the callback's URL
holds a code until the browser follows the redirect away from it).
"""

from __future__ import annotations

import hmac
import math

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.middleware import error_response
from gateway.signin.client import SignInFailed, now
from gateway.signin.cookies import (
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    read_cookie,
    set_cookie,
)
from gateway.signin.discovery import ProviderUnavailable
from gateway.signin.flow import SignIn
from gateway.signin.store import LOGIN_TTL

log = structlog.get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
CONSOLE = "/console/"


def _signin(request: Request) -> SignIn | None:
    signin: SignIn | None = request.state.services.signin
    return signin


def _no_provider() -> Response:
    return error_response(404, "not_found", "This gateway has no identity provider.", NO_STORE)


def _cookie(request: Request, name: str) -> str | None:
    return read_cookie(request.headers.get("cookie"), name)


async def config(request: Request) -> Response:
    """How the console signs in here: through the provider, and whether `#token=` is taken."""
    settings = request.state.services.settings
    body = {
        "provider": settings.oidc is not None,
        # The hand-over of make run's demo links (docs/console.md): dev mode only.
        "token_handover": settings.dev_mode,
        "paste": settings.oidc is None,
    }
    return JSONResponse(body, headers=NO_STORE)


async def login(request: Request) -> Response:
    """Begin a login: remember state, nonce and verifier; send the browser to the provider."""
    signin = _signin(request)
    if signin is None:
        return _no_provider()
    address = request.client.host if request.client else None
    if not signin.attempts.admit(address):
        retry = {"Retry-After": str(signin.attempts.retry_after(address)), **NO_STORE}
        return error_response(429, "rate_limited", "Too many sign-ins begun; wait.", retry)
    try:
        started = await signin.begin(request.query_params.get("next"))
    except ProviderUnavailable:
        message = "The identity provider is unavailable; try again shortly."
        return error_response(503, "provider_unavailable", message, NO_STORE)
    response = RedirectResponse(started.location, status_code=303, headers=NO_STORE)
    # Lax, not Strict: it must come back on the provider's top-level redirect to the callback.
    set_cookie(response, LOGIN_COOKIE, started.binding, int(LOGIN_TTL), "lax")
    return response


async def callback(request: Request) -> Response:
    """Finish a login: every check passes and a session starts, or nothing is kept (400)."""
    signin = _signin(request)
    if signin is None:
        return _no_provider()
    params = request.query_params
    try:
        finished = await signin.finish(
            state=params.get("state"),
            code=params.get("code"),
            iss=params.get("iss"),
            error=params.get("error"),
            binding=_cookie(request, LOGIN_COOKIE),
        )
    except SignInFailed as exc:
        log.info("signin.refused", reason=str(exc))
        refused: Response = error_response(
            400, "sign_in_failed", "Signing in failed; start again from the console.", NO_STORE
        )
        clear_cookie(refused, LOGIN_COOKIE, "lax")
        return refused
    response = RedirectResponse(CONSOLE + finished.return_to, status_code=303, headers=NO_STORE)
    clear_cookie(response, LOGIN_COOKIE, "lax")
    max_age = math.floor(finished.expires_at - now())
    set_cookie(response, SESSION_COOKIE, finished.session_id, max_age, "strict")
    return response


async def session(request: Request) -> Response:
    """Who is signed in (for display), and the CSRF token the console sends on every write."""
    signin = _signin(request)
    if signin is None:
        return _no_provider()
    found = await signin.session(_cookie(request, SESSION_COOKIE))
    principal = await signin.principal(found) if found is not None else None
    if found is None or principal is None:
        return error_response(401, "unauthenticated", "No session: sign in.", NO_STORE)
    body = {
        "sub": principal.sub,
        "roles": sorted(principal.roles),
        "customer_id": principal.customer_id,
        "expires_at": principal.expires_at,
        "csrf_token": found.csrf_token,
    }
    return JSONResponse(body, headers=NO_STORE)


async def logout(request: Request) -> Response:
    """End the session here, and say where the provider ends its own (if it can)."""
    signin = _signin(request)
    if signin is None:
        return _no_provider()
    session_id = _cookie(request, SESSION_COOKIE)
    found = await signin.session(session_id)
    if found is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site", "same-origin")
        origin_ok = origin is None or origin == signin.client.settings.origin
        csrf_ok = hmac.compare_digest(sent.encode(), found.csrf_token.encode())
        if not csrf_ok or not origin_ok or fetch_site not in ("same-origin", "none"):
            return error_response(
                403,
                "csrf_refused",
                "Refused: sign-out without the session's X-CSRF-Token.",
                NO_STORE,
            )
        await signin.end(session_id)
    post_logout = signin.client.settings.origin + CONSOLE
    response: Response = JSONResponse(
        {"end_session_url": await signin.client.end_session_url(post_logout)}, headers=NO_STORE
    )
    clear_cookie(response, SESSION_COOKIE, "strict")
    return response


routes: list[BaseRoute] = [
    Route("/auth/config", config, methods=["GET"]),
    Route("/auth/login", login, methods=["GET"]),
    Route("/auth/callback", callback, methods=["GET"]),
    Route("/auth/session", session, methods=["GET"]),
    Route("/auth/logout", logout, methods=["POST"]),
]
