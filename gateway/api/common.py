"""Helpers every thin handler uses: the services, a JSON body, an admin event (who may call a
route: gateway/api/access.py)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from starlette.requests import Request

from gateway.audit.atomic import Change, EventOf
from gateway.audit.events import Event, new_event
from gateway.errors import BadRequest
from gateway.services import Services
from gateway.types import EventType, Principal

MAX_BODY = 64 * 1024
T = TypeVar("T")
# No body of the contract nests deeper than a few levels; deeper is hostile (docs/contract.md §5).
MAX_JSON_DEPTH = 16


def services(request: Request) -> Services:
    """What the lifespan built, from its state (gateway/app.py)."""
    built: Services = request.state.services
    return built


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def client_request_id(request: Request) -> str | None:
    """The caller's own X-Request-ID, when it is plainly an id (gateway/middleware.py)."""
    found = request.scope.get("state", {}).get("client_request_id")
    return str(found) if found else None


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authorization(request: Request) -> str | None:
    """The Authorization header; several are joined, which authentication refuses as ambiguous."""
    return ", ".join(request.headers.getlist("authorization")) or None


async def json_body(request: Request) -> Any:
    """The request's JSON body, at most 64 KiB, nested at most 16 deep, with no lone surrogate
    or NUL in any string; BadRequest otherwise."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest("The body is larger than 64 KiB.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: 64 KiB of "[" parses recursively, past the interpreter's limit.
        raise BadRequest("The body must be JSON.") from exc
    _check_json(body)
    return body


def _check_json(body: Any) -> None:
    """Refuse deep nesting, lone surrogates and NULs, walking without recursion.

    A `"\\ud800"` escape (or UTF-8 bytes json reads with `surrogatepass`) gives a string that
    no database, log line or audit event can encode: refused here, not as a 500 later.
    """
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()  # depth: how many arrays and objects hold this value
        if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            raise BadRequest(f"The body nests deeper than {MAX_JSON_DEPTH} levels.")
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and not _storable(value):
            raise BadRequest("The body holds a lone surrogate or a NUL (not storable text).")


def _storable(text: str) -> bool:
    # A NUL is valid Unicode, but PostgreSQL's text refuses it: the change would fail as a
    # 503 audit_unavailable, as if the audit log were down, instead of a 400.
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def admin_event(
    request: Request, principal: Principal, event_type: EventType, **fields: Any
) -> Event:
    """An administrative event (grant, camera, suspension…) by this caller, not yet written."""
    return new_event(
        event_type,
        request_id=request_id(request),
        principal=principal.sub,
        roles=sorted(principal.roles),
        client_ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        **fields,
    )


async def record(
    request: Request, principal: Principal, event_type: EventType, **fields: Any
) -> Event:
    """Write one administrative event durably, on its own; 503 if it cannot."""
    return await services(request).audit.append(
        admin_event(request, principal, event_type, **fields)
    )


async def commit(
    request: Request, change: Change[T], event_of: EventOf[T]
) -> tuple[T, Event | None]:
    """Make a change and write its event in one transaction: both stand, or 503 and neither.

    docs/contract.md §7 "The chain": a change with no event is what the threat model reads as
    tampering, so no administrative change is made on its own (gateway/audit/atomic.py).
    """
    return await services(request).audit.commit_with(change, event_of)


def text_param(request: Request, name: str) -> str | None:
    """A text query parameter (a principal, a customer id); BadRequest names it when it holds
    a NUL, which no stored value holds and PostgreSQL refuses in a query (a 500)."""
    raw = request.query_params.get(name) or None
    if raw is not None and "\x00" in raw:
        raise BadRequest(f"{name} must not hold a NUL.")
    return raw


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
