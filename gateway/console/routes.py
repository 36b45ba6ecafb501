"""Serve the console's static files at /console/ with strict security headers.

The console is a same-origin page that holds a bearer token in sessionStorage, so what
matters most is that no script but our own can ever run in it: a CSP with `script-src 'self'`
and no 'unsafe-inline' (https://www.w3.org/TR/CSP3/), Trusted Types required so that even a
future `innerHTML` with a string throws instead of parsing markup, no framing (clickjacking),
no sniffing, and no Referer (the token may arrive in the URL fragment; fragments are never
sent, but there is no reason to leak the console's URLs either).
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Revalidate every time (ETag makes that cheap): a fixed console must reach browsers at once.
    "Cache-Control": "no-cache",
}


class SecurityHeaders:
    """Pure ASGI wrapper (STYLE §1): sets the console's security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def to_console(request: Request) -> Response:
    """`/console` → `/console/`, so that the page's relative module URLs resolve."""
    return RedirectResponse(request.scope.get("root_path", "") + "/console/", status_code=308)


routes: list[BaseRoute] = [
    Route("/console", to_console, methods=["GET", "HEAD"]),
    Mount("/console", app=SecurityHeaders(StaticFiles(directory=STATIC_DIR, html=True))),
]
