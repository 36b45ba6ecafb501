"""Analyst routes over the audit log: search with the contract's filters, and verify the chain."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import requires
from gateway.api.common import int_param, services, text_param
from gateway.audit.store import EventQuery
from gateway.audit.verify import verify_rows
from gateway.errors import BadRequest
from gateway.types import EventType, Principal, Verdict, format_ts, parse_input_ts


@requires("audit.read")
async def search_events(request: Request, _analyst: Principal) -> Response:
    q = request.query_params
    decision = q.get("decision")
    if decision not in (None, *Verdict):
        raise BadRequest("decision must be allow or deny.")
    types = tuple(t for t in q.getlist("type") if t)
    if not set(types) <= set(EventType):
        # As with decision: a typo (`flag.raise`, the action) must not read as "no such events".
        raise BadRequest("type must be an event type (contract §7), e.g. access.decision.")
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    query = EventQuery(
        principal=text_param(request, "principal"),
        customer_id=text_param(request, "customer_id"),
        decision=decision,
        types=types,
        since=_time(request, "since"),
        until=_time(request, "until"),
        after_seq=int_param(request, "after_seq", None, 0, 2**62),
        limit=limit,
    )
    events = await anyio.to_thread.run_sync(services(request).audit_store.query, query)
    next_after = events[-1]["seq"] if len(events) == limit else None
    return JSONResponse({"events": events, "next_after_seq": next_after})


def _time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return format_ts(parse_input_ts(raw))
    except ValueError as exc:
        message = f"{name} must be an RFC 3339 time with a zone, in the years 2000 to 2100."
        raise BadRequest(message) from exc


@requires("audit.read")
async def verify_chain(request: Request, _analyst: Principal) -> Response:
    svc = services(request)

    def run() -> dict[str, object]:
        checkpoint = svc.checkpoints.latest_verified()
        result = verify_rows(svc.audit_store.iter_rows(), checkpoint)
        body = result.as_json()
        body["checkpoint"] = checkpoint.as_json() if checkpoint else None
        return body

    return JSONResponse(await anyio.to_thread.run_sync(run))


routes = [
    Route("/v1/audit/events", search_events, methods=["GET"]),
    Route("/v1/audit/verify", verify_chain, methods=["GET"]),
]
