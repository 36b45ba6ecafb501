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
    "/v1/cameras",
    "/v1/grants",
    "/v1/me",
    "/v1/audit",
    "/v1/flags",
    "/v1/principals",
    "/console",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)


def route_label(path: str) -> str:
    """A bounded-cardinality label for metrics: the known prefix, never the ids."""
    return next((p for p in ROUTE_PREFIXES if path.startswith(p)), "other")


class RequestContextMiddleware:
    """Gives every request an X-Request-ID, binds it for logging, and times the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or random_hex()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        route = route_label(scope["path"])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("X-Request-ID", request_id)
                # No response is ever content-sniffed: a JSON error echoing a caller's text must
                # not be read as HTML (docs/contract.md §5, response headers).
                MutableHeaders(scope=message).setdefault("X-Content-Type-Options", "nosniff")
                _observe(scope, route, message["status"], time.perf_counter() - started)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


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
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The contract's error shape: {"error": {"code", "message"}}."""
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


async def _gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="footage-gateway"')
    return error_response(exc.status, exc.code, exc.message, headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", error=repr(exc), exc_info=exc)
    # Sent by Starlette's outermost ServerErrorMiddleware, around RequestContextMiddleware: the
    # header that middleware adds to every other response is set here.
    return error_response(
        500,
        "internal_error",
        "The gateway failed to handle this request.",
        {"X-Content-Type-Options": "nosniff"},
    )


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def error_handlers() -> dict[Any, Handler]:
    return {GatewayError: _gateway_error, HTTPException: _http_error, Exception: _unexpected}
