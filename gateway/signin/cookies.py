"""The session cookie: set, cleared, and turned into the bearer token the gateway verifies.

`SessionCookies` is pure ASGI (STYLE §1), outside the routes. A request that carries its own
Authorization header is left alone (the header decides; the cookie is ignored). Otherwise a
live session's access token becomes the request's Authorization header, so authentication,
authorization, audit and detection see exactly what a bearer caller would send: one trust
path. Before that, CSRF: a cookie-authenticated request from another site is refused
(Sec-Fetch-Site), and every cookie-authenticated write must carry the session's
X-CSRF-Token and, when the browser names an Origin, the gateway's own (contract §15).
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.middleware import error_response

# `__Host-`: only ever set by this origin over a secure context, for the whole path, never
# for a parent domain (RFC 6265bis §4.1.3.2). Browsers count http://127.0.0.1 and
# http://localhost as secure contexts (docs/security.md, Sign-in).
SESSION_COOKIE = "__Host-footgw_session"
LOGIN_COOKIE = "__Host-footgw_login"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = frozenset({"cross-site", "same-site"})
OWN_PREFIXES = ("/auth/", "/console")


def read_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header carries no session
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def set_cookie(response: Response, name: str, value: str, max_age: int, same_site: str) -> None:
    """HttpOnly, Secure, Path=/ and no Domain (what `__Host-` requires)."""
    response.set_cookie(
        name,
        value,
        max_age=max(max_age, 0),
        path="/",
        secure=True,
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
    )


def clear_cookie(response: Response, name: str, same_site: str) -> None:
    """Expire cookie `name` at once."""
    set_cookie(response, name, "", 0, same_site)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v for k, v in scope["headers"] if k == name]
    return b"; ".join(values).decode("latin-1") if values else None


class SessionCookies:
    """Cookie → Authorization for the API, with the CSRF checks a cookie makes necessary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OWN_PREFIXES):
            await self.app(scope, receive, send)
            return
        services = scope.get("state", {}).get("services")
        signin = getattr(services, "signin", None)
        session_id = read_cookie(_header(scope, b"cookie"), SESSION_COOKIE)
        if signin is None or session_id is None or _header(scope, b"authorization") is not None:
            await self.app(scope, receive, send)
            return
        refusal = _csrf_refusal(scope, signin.client.settings.origin)
        session = await signin.session(session_id)
        if session is None:  # ended or expired: the request goes on unauthenticated (401)
            await self.app(scope, receive, send)
            return
        if refusal is None and scope["method"] not in SAFE_METHODS:
            sent = _header(scope, CSRF_HEADER.encode()) or ""
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                refusal = "a cookie-authenticated write without the session's X-CSRF-Token"
        if refusal is not None:
            response = error_response(403, "csrf_refused", f"Refused: {refusal}.")
            await response(scope, receive, send)
            return
        bearer = (b"authorization", f"Bearer {session.access_token}".encode("ascii"))
        await self.app({**scope, "headers": [*scope["headers"], bearer]}, receive, send)


def _csrf_refusal(scope: Scope, origin: str) -> str | None:
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() in CROSS_SITE:
        return "a cookie-authenticated request from another site"
    if scope["method"] in SAFE_METHODS:
        return None
    sent_origin = _header(scope, b"origin")
    if sent_origin is not None and sent_origin != origin:
        return "a cookie-authenticated write from another origin"
    return None
