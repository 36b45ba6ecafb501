"""Serve the console's static files at /console/ with strict security headers.

The console is a same-origin page that holds a bearer token in sessionStorage, so what
matters most is that no script but our own can ever run in it: a CSP with `script-src 'self'`
and no 'unsafe-inline' (https://www.w3.org/TR/CSP3/), Trusted Types required so that even a
future `innerHTML` with a string throws instead of parsing markup, no framing (clickjacking),
no sniffing, and no Referer (the token may arrive in the URL fragment; fragments are never
sent, but there is no reason to leak the console's URLs either).

Video plays from this origin (`media-src 'self'`: playback URLs, contract §5) and, in redirect
delivery only, from the one S3 origin the gateway's presigned URLs point at: a `<video>` follows
the 307 there, and CSP checks the redirect's target too (CSP3 §6.1, "media-src").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"


def content_security_policy(media_origins: Sequence[str] = ()) -> str:
    """The console's CSP; `media_origins` are the other origins video may come from (S3)."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            " ".join(("media-src 'self'", *media_origins)),
            "connect-src 'self'",
            "manifest-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )


# Proxy and accel delivery: every byte of video comes from this origin.
CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = {
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

    def __init__(self, app: ASGIApp, csp: str = CONTENT_SECURITY_POLICY) -> None:
        self.app = app
        self.headers = {"Content-Security-Policy": csp, **SECURITY_HEADERS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def to_console(request: Request) -> Response:
    """`/console` → `/console/`, so that the page's relative module URLs resolve."""
    return RedirectResponse(request.scope.get("root_path", "") + "/console/", status_code=308)


def console_routes(media_origins: Sequence[str] = ()) -> list[BaseRoute]:
    """The console's routes, its CSP letting video come from `media_origins` too."""
    static = StaticFiles(directory=STATIC_DIR, html=True)
    return [
        Route("/console", to_console, methods=["GET", "HEAD"]),
        Mount("/console", app=SecurityHeaders(static, content_security_policy(media_origins))),
    ]
