"""Analyst routes on flags: list them, resolve one (policy action `flags.manage`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import requires
from gateway.api.common import admin_event, commit, int_param, json_body, services, text_param
from gateway.audit.events import Event
from gateway.detection.flags import Flag, FlagStore
from gateway.errors import BadRequest
from gateway.types import EventType, FlagStatus, Principal

MAX_RESOLUTION = 2000
MAX_FLAG_ID = 64


def _store(request: Request) -> FlagStore:
    return services(request).detector.flags


@requires("flags.manage")
async def list_flags(request: Request, _analyst: Principal) -> Response:
    """`?status=open|resolved`, `?principal=`, `?limit=`; newest first."""
    wanted = request.query_params.get("status") or None
    if wanted not in (None, *FlagStatus):
        raise BadRequest("status must be open or resolved.")
    status = FlagStatus(wanted) if wanted else None
    principal = text_param(request, "principal")
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    await services(request).detector.flush()  # the evidence this process holds, written
    store = _store(request)
    found = await anyio.to_thread.run_sync(lambda: store.search(status, principal, limit))
    return JSONResponse({"flags": [f.as_json() for f in found]})


@requires("flags.manage")
async def resolve_flag(request: Request, analyst: Principal) -> Response:
    """Close an open flag with the analyst's resolution; audited as `flag.resolved`."""
    flag_id = request.path_params["flag_id"]
    if not 1 <= len(flag_id) <= MAX_FLAG_ID:
        raise BadRequest("Malformed flag id.")
    resolution = _resolution(await json_body(request))
    await services(request).detector.flush()  # held evidence lands before the flag closes
    store = _store(request)
    now = datetime.now(UTC)

    def event_of(flag: Flag) -> Event:
        return admin_event(
            request,
            analyst,
            EventType.FLAG_RESOLVED,
            action="flag.resolve",
            detail={
                "flag_id": flag.flag_id,
                "rule": flag.rule,
                "subject": flag.principal,
                "resolution": resolution,
            },
        )

    flag, event = await commit(
        request, lambda conn: store.resolve(flag_id, resolution, analyst.sub, now, conn), event_of
    )
    assert event is not None  # a resolution always has its event
    return JSONResponse(flag.as_json(), headers={"X-Audit-Event-ID": event["event_id"]})


def _resolution(body: Any) -> str:
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    text = body.get("resolution")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_RESOLUTION:
        raise BadRequest(f"resolution must be text of 1 to {MAX_RESOLUTION} characters.")
    return text.strip()


routes = [
    Route("/v1/flags", list_flags, methods=["GET"]),
    Route("/v1/flags/{flag_id}/resolve", resolve_flag, methods=["POST"]),
]
