"""Security routes on principals: suspend, reinstate, and see one's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import requires
from gateway.api.common import admin_event, commit, json_body, services
from gateway.errors import BadRequest
from gateway.types import EventType, Principal, PrincipalState, is_valid_sub


@requires("principals.manage")
async def suspend(request: Request, actor: Principal) -> Response:
    return await _set_status(
        request, actor, PrincipalState.SUSPENDED, EventType.PRINCIPAL_SUSPENDED
    )


@requires("principals.manage")
async def reinstate(request: Request, actor: Principal) -> Response:
    return await _set_status(request, actor, PrincipalState.ACTIVE, EventType.PRINCIPAL_REINSTATED)


async def _set_status(
    request: Request, actor: Principal, status: PrincipalState, event_type: EventType
) -> Response:
    sub = _sub(request)
    reason = _reason(await _optional_body(request))
    svc = services(request)
    now = datetime.now(UTC)
    event = admin_event(
        request,
        actor,
        event_type,
        action=str(event_type),
        status=None,
        detail={"subject": sub, "reason": reason, "by": "manual"},
    )
    changed, _ = await commit(
        request,
        lambda conn: svc.principals.set_status(sub, status, reason, actor.sub, now, conn),
        lambda changed: event if changed else None,  # suspending twice is one suspension
    )
    if changed and status is PrincipalState.ACTIVE:
        await svc.detector.forget(sub)  # else the old counts would suspend them again at once
    current = await anyio.to_thread.run_sync(svc.principals.status, sub)
    return JSONResponse(current.as_json())


@requires("principals.manage")
async def get_principal(request: Request, _analyst: Principal) -> Response:
    sub = _sub(request)
    svc = services(request)
    current = await anyio.to_thread.run_sync(svc.principals.status, sub)
    body: dict[str, Any] = current.as_json()
    body.update(await svc.detector.summary(sub))
    return JSONResponse(body)


def _sub(request: Request) -> str:
    sub = request.path_params["sub"]
    if not is_valid_sub(sub):
        raise BadRequest("Malformed principal.")
    return str(sub)


async def _optional_body(request: Request) -> Any:
    if not int(request.headers.get("content-length") or 0) and "chunked" not in (
        request.headers.get("transfer-encoding") or ""
    ):
        return {}
    return await json_body(request)


def _reason(body: Any) -> str:
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise BadRequest("reason must be text of at most 500 characters.")
    return reason


routes = [
    Route("/v1/principals/{sub}/suspend", suspend, methods=["POST"]),
    Route("/v1/principals/{sub}/reinstate", reinstate, methods=["POST"]),
    Route("/v1/principals/{sub}", get_principal, methods=["GET"]),
]
