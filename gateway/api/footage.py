"""Footage routes: view (GET/HEAD), list a camera's clips, and the owner's delete."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from gateway.api.access import requires
from gateway.api.common import (
    authorization,
    client_ip,
    client_request_id,
    record,
    request_id,
    services,
)
from gateway.calls import FootageCall
from gateway.errors import BadRequest, DeletionBlocked, Forbidden, GatewayError, MethodNotAllowed
from gateway.types import (
    Action,
    ClipRef,
    EventType,
    Principal,
    clip_recorded_at,
    is_valid_id,
)

NO_STORE = {"Cache-Control": "private, no-store"}
CLIP_METHODS = ["GET", "HEAD", "DELETE"]


ESCAPED = "Footage paths never contain percent-escapes."
MALFORMED = "A footage path is /v1/footage/{customer_id}/{camera_id}[/{clip_id}]."


def _call(request: Request, action: Action, path_problem: str | None = None) -> FootageCall:
    params = request.path_params
    headers = request.headers
    return FootageCall(
        method=request.method,
        action=action,
        customer_id=params.get("customer_id", params.get("rest", "")),
        camera_id=params.get("camera_id", ""),
        clip_id=params.get("clip_id"),
        authorization=authorization(request),  # refused in the flow, so a 401 is audited
        purpose=headers.get("x-access-purpose"),
        justification=headers.get("x-access-justification"),
        range_header=headers.get("range"),
        request_id=request_id(request),
        client_ip=client_ip(request),
        user_agent=headers.get("user-agent"),
        path_problem=path_problem or (ESCAPED if _escaped(request) else None),
        if_match=headers.get("if-match"),
        if_none_match=headers.get("if-none-match"),
        if_range=headers.get("if-range"),
        client_request_id=client_request_id(request),
    )


def _escaped(request: Request) -> bool:
    # Valid ids never need percent-encoding, so any escape in the raw path (an encoded slash,
    # dot or NUL that the router has already decoded) is an attempt to name something else.
    return b"%" in request.scope.get("raw_path", b"")


def _refuse_encoded(request: Request) -> None:
    if _escaped(request):
        raise BadRequest(ESCAPED)


async def clip(request: Request) -> Response:
    """One route for every method on a clip, so a 405 there lists them all in `Allow`."""
    if request.method == "DELETE":
        return await delete_clip(request)
    return await view_clip(request)


async def view_clip(request: Request) -> Response:
    return await services(request).flow.view(_call(request, Action.VIEW))


async def list_clips(request: Request) -> Response:
    body, headers = await services(request).flow.list_clips(_call(request, Action.LIST))
    return JSONResponse(body, headers={**headers, **NO_STORE})


async def delete_clip(request: Request) -> Response:
    """The owner deletes a clip for good; the audit log keeps a footage.deleted event.

    A DELETE refused before the storage is asked (400, 401, 403) is a footage response like
    any other: audited as one access.decision (contract §7). One the storage refuses is named
    by its footage.delete_failed event instead (_record_failure).
    """
    try:
        _refuse_encoded(request)  # before authentication: an escaped path names nothing at all
        return await _delete_owned_clip(request)
    except GatewayError as exc:
        raise await services(request).flow.refuse(_call(request, Action.VIEW), exc) from None


def _clip_owner(request: Request) -> str:
    return _clip_ref(request).customer_id


@requires(owner=_clip_owner, message="Only the owner may do this.", code="not_owner")
async def _delete_owned_clip(request: Request, principal: Principal) -> Response:
    """Record the request, delete, record the outcome (docs/contract.md §7 "The chain").

    Storage is not transactional, so the order is what keeps the log honest: no deletion
    without a `footage.delete_requested` before it (if that cannot be written, nothing is
    deleted), and no `footage.deleted` unless the storage said the clip is gone.
    """
    clip = _clip_ref(request)
    where = {"customer_id": clip.customer_id, "camera_id": clip.camera_id, "clip_id": clip.clip_id}
    requested = await record(
        request, principal, EventType.FOOTAGE_DELETE_REQUESTED, action="delete", **where
    )
    joined = {"requested_event_id": requested["event_id"]}
    storage = services(request).storage
    try:
        # Every stored version (docs/contract.md §4): NotFound → 404 for the owner; an object
        # lock or legal hold on any version → 409 deletion_blocked, nothing removed.
        deletion = await storage.plan_deletion(clip)
        await storage.delete(deletion)
    except GatewayError as exc:
        await _record_failure(request, principal, where, joined, exc)
        raise
    event = await record(
        request,
        principal,
        EventType.FOOTAGE_DELETED,
        action="delete",
        status=204,
        detail={**joined, "removed": deletion.as_detail()},
        **where,
    )
    return Response(status_code=204, headers={"X-Audit-Event-ID": event["event_id"], **NO_STORE})


async def _record_failure(
    request: Request,
    principal: Principal,
    where: dict[str, str],
    joined: dict[str, str],
    exc: GatewayError,
) -> None:
    """`footage.delete_failed` for a deletion the storage refused; the refusal is answered even
    if this event cannot be written (the request event then stands alone, naming no outcome).
    A lock's refusal names the versions it keeps (and any removed before it was met)."""
    blocked = exc.as_detail() if isinstance(exc, DeletionBlocked) else {}
    with contextlib.suppress(GatewayError):
        event = await record(
            request,
            principal,
            EventType.FOOTAGE_DELETE_FAILED,
            action="delete",
            status=exc.status,
            reason=exc.code,
            detail={**joined, **blocked},
            **where,
        )
        exc.headers.update({"X-Audit-Event-ID": event["event_id"], **NO_STORE})


def _clip_ref(request: Request) -> ClipRef:
    p = request.path_params
    recorded_at = clip_recorded_at(p["clip_id"])
    if not (is_valid_id(p["customer_id"]) and is_valid_id(p["camera_id"])) or not recorded_at:
        raise BadRequest("Malformed customer, camera or clip id.")
    return ClipRef(p["customer_id"], p["camera_id"], p["clip_id"], recorded_at)


async def malformed(request: Request) -> Response:
    """A path under /v1/footage that names no clip: refused, and audited like any decision."""
    if request.method == "DELETE":
        raise await services(request).flow.refuse(
            _call(request, Action.VIEW, MALFORMED), BadRequest(MALFORMED)
        )
    await services(request).flow.list_clips(_call(request, Action.VIEW, MALFORMED))
    raise AssertionError("a malformed footage path is never allowed")  # pragma: no cover


async def not_allowed(request: Request) -> Response:
    """A method no footage route answers: 405, audited (401 first when unauthenticated)."""
    parts = request.path_params["rest"].split("/")
    clip_path = len(parts) == 3
    call = replace(
        _call(request, Action.VIEW if clip_path else Action.LIST),
        customer_id=parts[0],
        camera_id=parts[1] if len(parts) > 1 else "",
        clip_id=parts[2] if clip_path else None,
    )
    flow = services(request).flow
    principal = await flow.identify(call)
    if (await services(request).facts.status(principal.sub)).suspended:
        # A suspended principal is refused as such on everything (contract §5), before the
        # method is looked at.
        suspended = Forbidden("This principal is suspended.", code="principal_suspended")
        raise await flow.refuse(call, suspended)
    allow = "DELETE, GET, HEAD" if clip_path else "GET, HEAD"
    refused = MethodNotAllowed(f"{request.method} is not allowed here.", headers={"Allow": allow})
    raise await flow.refuse(call, refused)


class AnyMethod:
    """A handler as an ASGI endpoint, for every method (Starlette routes a plain function's
    requests only for the methods it is given, GET by default)."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


routes = [
    Route("/v1/footage/{customer_id}/{camera_id}/{clip_id}", clip, methods=CLIP_METHODS),
    Route("/v1/footage/{customer_id}/{camera_id}", list_clips, methods=["GET"]),
    # Anything else under /v1/footage (an encoded slash, an extra segment) is malformed, not 404.
    Route("/v1/footage/{rest:path}", malformed, methods=["GET", "HEAD", "DELETE"]),
    # Any other method, on any footage path: the router would answer 405 unaudited.
    Route("/v1/footage/{rest:path}", AnyMethod(not_allowed), name="not_allowed"),
]
