"""The lean lane for play requests: GET|HEAD /v1/play/{token} without the router.

A player sends its range requests by the dozen through one playback URL, so what a play request
costs on top of reading and sending its bytes is the playback figure (docs/benchmarks.md). Of
that, Starlette's exception middleware, the router (a regex per route until the play route),
its request wrapper and their send wrappers, and the session-cookie middleware were about a
quarter. A play request needs none of them: it has one handler, reads no body and no cookie,
and its only errors are GatewayErrors, answered as the app's handler answers them.

`PlayLane` sits just inside RequestContextMiddleware (gateway/app.py), so every play response
still gets its request id, `Cache-Control: private, no-store`, nosniff and the request metrics
there, and an unexpected error still becomes the contract's 500 there. It takes only what
the play route would take, the same way:

- GET or HEAD (anything else: the router's 405), a path of `/v1/play/` and one segment (the
  route's `{token}`; anything else: the router's 404), no root_path;
- no session cookie: SessionCookies may refuse such a request (CSRF) or add a bearer token,
  so a request carrying one takes the full stack, as does every other request.

Everything else is the play route's own code: the same FootageCall (api/playback.py
call_from_scope, tested equal to what the route reads), the same flow, the same responses.
tests/test_playlane.py compares the lane's answers with the full stack's.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.playback import call_from_scope
from gateway.errors import GatewayError
from gateway.middleware import gateway_error_response
from gateway.signin.cookies import SESSION_COOKIE

PREFIX = "/v1/play/"
_COOKIE_NAME = SESSION_COOKIE.encode("latin-1")


class PlayLane:
    """Serves play requests itself and passes every other request on (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _token(scope)
        services = scope.get("state", {}).get("services") if token else None
        if token is None or services is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # As Starlette's exception handling around a route: the handler's answer to a
        # GatewayError raised by the flow or by its response before any byte was sent.
        try:
            response = await services.playback.play(token, call_from_scope(scope))
            await response(scope, receive, sender)
        except GatewayError as exc:
            if started:
                raise RuntimeError(
                    "Caught handled exception, but response already started."
                ) from exc
            await gateway_error_response(exc)(scope, receive, sender)
            exc.__traceback__ = None  # as Starlette does: a reused exception keeps no traceback


def _token(scope: Scope) -> str | None:
    """The token of a request the play route would take, unchanged; None for any other."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or scope.get("root_path"):
        return None
    token = path[len(PREFIX) :]
    if not token or "/" in token:
        return None
    for name, value in scope["headers"]:
        if name == b"cookie" and _COOKIE_NAME in value:
            return None  # SessionCookies has a say: the full stack
    return token
