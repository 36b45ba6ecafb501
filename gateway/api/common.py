"""Helpers every thin handler uses: the services, the caller, a JSON body, an admin event."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from gateway.audit.events import Event, new_event
from gateway.errors import BadRequest, Forbidden
from gateway.types import EventType, Principal

if TYPE_CHECKING:
    from gateway.app import Services

MAX_BODY = 64 * 1024


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authorization(request: Request) -> str | None:
    """The Authorization header; several are joined, which authentication refuses as ambiguous."""
    return ", ".join(request.headers.getlist("authorization")) or None


async def caller(request: Request) -> Principal:
    """The authenticated, not suspended principal (401 / 403 principal_suspended otherwise)."""
    return await services(request).flow.authenticate(authorization(request))


async def require(request: Request, action: str) -> Principal:
    """The caller, if the policy gives any of their roles this administrative action."""
    principal = await caller(request)
    if not services(request).policy.may(principal, action):
        raise Forbidden("Your role may not do this.")
    return principal


def require_owner(principal: Principal, customer_id: str) -> None:
    """Only the customer who owns the footage (their token's customer_id) may do this."""
    if "customer" not in principal.roles or principal.customer_id != customer_id:
        raise Forbidden("Only the owner may do this.", code="not_owner")


async def json_body(request: Request) -> Any:
    """The request's JSON body, at most 64 KiB; BadRequest otherwise."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest("The body is larger than 64 KiB.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The body must be JSON.") from exc


async def record(
    request: Request, principal: Principal, event_type: EventType, **fields: Any
) -> Event:
    """Write one administrative event (grant, camera, suspension…) durably; 503 if it cannot."""
    event = new_event(
        event_type,
        request_id=request_id(request),
        principal=principal.sub,
        roles=sorted(principal.roles),
        client_ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        **fields,
    )
    return await services(request).audit.append(event)


def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """A bounded integer query parameter; BadRequest names it when it is not one."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer.") from exc
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}.")
    return value
