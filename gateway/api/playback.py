"""Playback routes (contract §12): start a session, watch through its URL, list and end them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from gateway.api.access import is_customer, owns, requires
from gateway.api.common import (
    authorization,
    client_ip,
    client_request_id,
    json_body,
    request_id,
    services,
)
from gateway.calls import FootageCall
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound
from gateway.playback.ending import PLAYBACK_ACTION, EndedBy
from gateway.playback.standing import ENDED, ENDED_BY_CUSTOMER
from gateway.playback.store import LIVE, Session
from gateway.types import Action, Principal

NO_STORE = {"Cache-Control": "private, no-store"}
START_FIELDS = ("customer_id", "camera_id", "clip_id")


def _call(request: Request, ids: Mapping[str, str] | None = None) -> FootageCall:
    headers = request.headers
    ids = ids or {}
    return FootageCall(
        method=request.method,
        action=Action.VIEW,  # authorized as a view of the clip is (the policy's word)
        customer_id=ids.get("customer_id", ""),
        camera_id=ids.get("camera_id", ""),
        clip_id=ids.get("clip_id") or None,
        authorization=authorization(request),
        purpose=headers.get("x-access-purpose"),
        justification=headers.get("x-access-justification"),
        range_header=headers.get("range"),
        request_id=request_id(request),
        client_ip=client_ip(request),
        user_agent=headers.get("user-agent"),
        if_match=headers.get("if-match"),
        if_none_match=headers.get("if-none-match"),
        if_range=headers.get("if-range"),
        client_request_id=client_request_id(request),
    )


# The request headers a play request reads (call_from_scope), by their raw lower-case names.
_PLAY_HEADERS = frozenset(
    {
        b"x-access-purpose",
        b"x-access-justification",
        b"range",
        b"user-agent",
        b"if-match",
        b"if-none-match",
        b"if-range",
    }
)


def call_from_scope(scope: Scope) -> FootageCall:
    """The FootageCall `_call` makes of a play request (GET|HEAD /v1/play/{token}), read
    straight off the ASGI scope: the lean lane's (gateway/playlane.py), with no Request or
    Headers built. Each header is its first value, as Headers.get gives it; Authorization is
    every value joined, as `authorization` joins them."""
    found: dict[bytes, str] = {}
    authorizations: list[str] = []
    for name, value in scope["headers"]:
        if name in _PLAY_HEADERS:
            if name not in found:
                found[name] = value.decode("latin-1")
        elif name == b"authorization":
            authorizations.append(value.decode("latin-1"))
    state = scope.get("state", {})
    client = scope.get("client")
    client_request = state.get("client_request_id")
    return FootageCall(
        method=scope["method"],
        action=Action.VIEW,
        customer_id="",
        camera_id="",
        clip_id=None,
        authorization=", ".join(authorizations) or None,
        purpose=found.get(b"x-access-purpose"),
        justification=found.get(b"x-access-justification"),
        range_header=found.get(b"range"),
        request_id=str(state.get("request_id", "")),
        client_ip=client[0] if client else None,
        user_agent=found.get(b"user-agent"),
        if_match=found.get(b"if-match"),
        if_none_match=found.get(b"if-none-match"),
        if_range=found.get(b"if-range"),
        client_request_id=str(client_request) if client_request else None,
    )


async def start_playback(request: Request) -> Response:
    """POST /v1/playback: authorized and audited as a GET of the clip; 201 with the URL."""
    try:
        ids = _start_body(await json_body(request))
    except GatewayError as exc:  # a malformed body is a refused footage request: audited
        call = replace(_call(request), event_action=PLAYBACK_ACTION)
        raise await services(request).flow.refuse(call, exc) from None
    body, headers = await services(request).playback.start(_call(request, ids))
    return JSONResponse(body, 201, headers=headers)


def _start_body(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    extra = sorted(set(body) - set(START_FIELDS))
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    ids = {}
    for name in START_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{name} must be a non-empty string.")
        ids[name] = value
    return ids


async def play(request: Request) -> Response:
    """GET|HEAD /v1/play/{token}: no Authorization; the token is the capability."""
    token = request.path_params["token"]
    return await services(request).playback.play(token, _call(request))


@requires()
async def list_playback(request: Request, principal: Principal) -> Response:
    """Customers: live sessions on their footage ("watching now"). Others: their own."""
    store = services(request).playback.store
    if is_customer(principal):
        found = await anyio.to_thread.run_sync(
            lambda: store.live_for(customer_id=principal.customer_id)
        )
    else:
        found = await anyio.to_thread.run_sync(lambda: store.live_for(principal=principal.sub))
    return JSONResponse({"sessions": [s.as_json() for s in found]}, headers=NO_STORE)


@requires()  # who may end it depends on the session: see _session_for_ender
async def end_playback(request: Request, principal: Principal) -> Response:
    """DELETE /v1/playback/{session_id}: the principal or the owning customer ends it."""
    playback = services(request).playback
    session = await _session_for_ender(request, principal)
    if session.state != LIVE:
        raise NotFound("This playback has ended already.", code="playback_ended")
    reason = ENDED if session.principal == principal.sub else ENDED_BY_CUSTOMER
    by = EndedBy(
        principal.sub,
        request_id(request),
        client_ip(request),
        (request.headers.get("user-agent") or "")[:300] or None,
    )
    sealed = await playback.ender.end(session, reason, playback.clock(), by)
    if sealed is None:  # ended elsewhere a moment ago
        raise NotFound("This playback has ended already.", code="playback_ended")
    return Response(status_code=204, headers={"X-Audit-Event-ID": sealed["event_id"], **NO_STORE})


async def _session_for_ender(request: Request, principal: Principal) -> Session:
    """The session, if this caller may end it; who may is decided before whether it exists
    (as for grants: an unknown id and another's session are the same 403)."""
    store = services(request).playback.store
    session_id = request.path_params["session_id"][:64]
    refusal = Forbidden("Only the principal watching or the owner may end this playback.")
    try:
        session = await anyio.to_thread.run_sync(store.get, session_id)
    except NotFound:
        raise refusal from None
    if session.principal != principal.sub and not owns(principal, session.customer_id):
        refusal.code = "not_owner"
        raise refusal
    return session


routes = [
    Route("/v1/playback", start_playback, methods=["POST"]),
    Route("/v1/playback", list_playback, methods=["GET"]),
    Route("/v1/playback/{session_id}", end_playback, methods=["DELETE"]),
    Route("/v1/play/{token}", play, methods=["GET", "HEAD"]),
]
