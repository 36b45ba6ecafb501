"""Pure ASGI middleware (STYLE §1) and the one handler that turns errors into contract JSON."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.ids import random_hex

log = structlog.get_logger("gateway.http")

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,64}", re.ASCII)
ROUTE_PREFIXES = (
    "/v1/footage",
    "/v1/playback",
    "/v1/play/",
    "/v1/cameras",
    "/v1/grants",
    "/v1/me",
    "/v1/audit",
    "/v1/flags",
    "/v1/principals",
    "/console",
    "/auth",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)


def route_label(path: str) -> str:
    """A bounded-cardinality label for metrics: the known prefix, never the ids."""
    return next((p for p in ROUTE_PREFIXES if path.startswith(p)), "other")


class RequestContextMiddleware:
    """Gives every request the server's own X-Request-ID, binds it for logging, times the
    response, and answers an unhandled exception with the contract's 500 (so that response,
    too, carries the request id and, on footage paths, `Cache-Control: private, no-store`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request id is always made here: audit events are joined by it (contract §5,
        # Headers), so a caller must not be able to choose or repeat it. A caller's own id is
        # kept beside it, as client_request_id, for their own correlation.
        request_id = random_hex()
        client_request_id = _incoming_request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        started = time.perf_counter()
        route = route_label(scope["path"])
        footage = route in ("/v1/footage", "/v1/play/")
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                if footage:  # error or not: no cache between us and the caller keeps it
                    headers["Cache-Control"] = NO_STORE
                # No response is ever content-sniffed: a JSON error echoing a caller's text must
                # not be read as HTML (docs/contract.md §5, response headers).
                headers.setdefault("X-Content-Type-Options", "nosniff")
                _observe(scope, route, message["status"], time.perf_counter() - started)
            await send(message)

        ids = {"request_id": request_id}
        if client_request_id:
            ids["client_request_id"] = client_request_id
        with structlog.contextvars.bound_contextvars(**ids):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if responded:  # too late for an error response: the server closes the stream
                    raise
                log.error("unhandled_error", error=repr(exc), exc_info=exc)
                await _internal_error()(scope, receive, send_with_id)


NO_STORE = "private, no-store"


def _internal_error() -> Response:
    # Also sent by Starlette's outermost ServerErrorMiddleware (an error in a middleware
    # outside RequestContextMiddleware), which never passes through it: nosniff is set here too.
    return error_response(
        500,
        "internal_error",
        "The gateway failed to handle this request.",
        {"X-Content-Type-Options": "nosniff"},
    )


def _incoming_request_id(scope: Scope) -> str | None:
    # A caller's id is kept only if it is plainly an id: it ends up in logs and the audit log.
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if REQUEST_ID_PATTERN.fullmatch(text) else None
    return None


def _observe(scope: Scope, route: str, status: int, seconds: float) -> None:
    services = scope.get("state", {}).get("services")  # the lifespan's state (gateway/app.py)
    if services is not None:
        services.metrics.requests.labels(route, str(status)).inc()
        services.metrics.latency.labels(route).observe(seconds)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The contract's error shape: {"error": {"code", "message"}} (and `extra`'s members)."""
    error = {**(extra or {}), "code": code, "message": message}
    return JSONResponse({"error": error}, status, headers=headers)


async def _gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return gateway_error_response(exc)


def gateway_error_response(exc: GatewayError) -> Response:
    """The contract's answer to a GatewayError (the app's handler; gateway/playlane.py too)."""
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="footage-gateway"')
    return error_response(exc.status, exc.code, exc.message, headers, exc.extra)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", error=repr(exc), exc_info=exc)
    return _internal_error()


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def error_handlers() -> dict[Any, Handler]:
    return {GatewayError: _gateway_error, HTTPException: _http_error, Exception: _unexpected}
