"""Access request routes (contract §13): staff ask; the customer, or staff approvers, answer.

Who sees a request: its requester, the customer whose footage it asks for, the holders of its
approver roles (staff-approved purposes), and whoever the policy gives
`access_requests.read_any` (security analysts, admins). Anyone else is refused 403 `not_owner`
whether or not it exists. Who may answer is decided inside the answer's own transaction
(gateway/access_requests/service.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.access_requests.models import (
    STAFF,
    AccessRequestRecord,
    parse_message,
    parse_new_request,
)
from gateway.access_requests.service import MakeEvent
from gateway.api.access import is_customer, owns, permits, requires
from gateway.api.common import admin_event, int_param, json_body, services
from gateway.api.grants import check_grantable
from gateway.audit.events import Event
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.services import Services
from gateway.types import STAFF_ROLES, EventType, Principal, RequestState

READ_ANY = "access_requests.read_any"  # the policy action that sees every request
MAX_REQUEST_ID = 64
NOT_YOURS = "This access request is not yours to see."


def _events(request: Request, principal: Principal) -> MakeEvent:
    def make(event_type: EventType, **fields: Any) -> Event:
        return admin_event(request, principal, event_type, **fields)

    return make


def _now(svc: Services) -> datetime:
    return svc.access_requests.clock()


@requires()
async def create_request(request: Request, principal: Principal) -> Response:
    """A staff member asks a customer (or staff approvers) for access; 201 pending."""
    svc = services(request)
    staff = principal.known_roles & STAFF_ROLES
    if not staff:
        raise Forbidden("Only staff ask for access; customers grant it.", code="forbidden")
    now = _now(svc)
    record = parse_new_request(
        await json_body(request),
        principal,
        now,
        ttl_seconds=svc.settings.access_request_ttl_seconds,
        max_duration=svc.settings.grant_max_ttl_seconds,
        approvals=svc.policy.approvals,
    )
    await check_grantable(svc, record.customer_id, record.purpose, record.cameras)
    if not svc.policy.allows_purpose(record.purpose, staff):
        raise BadRequest(
            f"The policy lets none of your roles use {record.purpose}.",
            code="purpose_not_grantable",
        )
    stored, event = await svc.access_requests.create(record, _events(request, principal))
    return JSONResponse(stored.as_json(now), 201, headers=_header(event))


@requires()
async def list_requests(request: Request, principal: Principal) -> Response:
    """Analysts: all; customers: those on their footage; staff: their own and their queue."""
    svc = services(request)
    wanted = request.query_params.get("state") or None
    if wanted is not None and wanted not in RequestState._value2member_map_:
        raise BadRequest("state must be one of " + ", ".join(RequestState) + ".")
    state = RequestState(wanted) if wanted else None
    limit = int_param(request, "limit", 100, 1, 500) or 100
    now = _now(svc)
    store = svc.access_requests.store
    if permits(svc.policy, principal, READ_ANY):
        found = await anyio.to_thread.run_sync(lambda: store.search(now, state=state, limit=limit))
    elif is_customer(principal):
        customer_id = principal.customer_id
        found = await anyio.to_thread.run_sync(
            lambda: store.search(now, state=state, customer_id=customer_id, limit=limit)
        )
    else:
        found = await anyio.to_thread.run_sync(
            lambda: store.search(now, state=state, requester_or_staff=principal.sub, limit=limit)
        )
        found = [r for r in found if _may_see(svc, principal, r)]
    return JSONResponse({"access_requests": [r.as_json(now) for r in found]})


@requires()
async def get_request(request: Request, principal: Principal) -> Response:
    svc = services(request)
    record = await _visible(svc, principal, _request_id(request))
    return JSONResponse(record.as_json(_now(svc)))


@requires()
async def approve_request(request: Request, principal: Principal) -> Response:
    """The owning customer approves (optionally narrowing), or one staff approver of N."""
    svc = services(request)
    request_id = _request_id(request)
    body = await _optional_body(request)
    answer = await _answering(
        svc,
        principal,
        svc.access_requests.approve(principal, request_id, body, _events(request, principal)),
    )
    now = _now(svc)
    grant = answer.grant.as_json(now) if answer.grant else None
    return JSONResponse(
        {**answer.request.as_json(now), "grant": grant}, headers=_header(answer.events[0])
    )


@requires()
async def deny_request(request: Request, principal: Principal) -> Response:
    svc = services(request)
    request_id = _request_id(request)
    message = parse_message(await _optional_body(request))
    done, event = await _answering(
        svc,
        principal,
        svc.access_requests.deny(principal, request_id, message, _events(request, principal)),
    )
    return JSONResponse(done.as_json(_now(svc)), headers=_header(event))


@requires()
async def cancel_request(request: Request, principal: Principal) -> Response:
    svc = services(request)
    request_id = _request_id(request)
    done, event = await _answering(
        svc,
        principal,
        svc.access_requests.cancel(principal, request_id, _events(request, principal)),
    )
    return JSONResponse(done.as_json(_now(svc)), headers=_header(event))


async def _answering(svc: Services, principal: Principal, answer: Any) -> Any:
    """Await an answer; a missing request is 404 only to those who may see every request."""
    try:
        return await answer
    except NotFound:
        if permits(svc.policy, principal, READ_ANY):
            raise
        raise Forbidden(NOT_YOURS, code="not_owner") from None


async def _visible(svc: Services, principal: Principal, request_id: str) -> AccessRequestRecord:
    """The request if this caller may see it; authorization is decided before existence."""
    read_any = permits(svc.policy, principal, READ_ANY)
    try:
        record = await anyio.to_thread.run_sync(svc.access_requests.store.get, request_id)
    except NotFound:
        if read_any:
            raise
        raise Forbidden(NOT_YOURS, code="not_owner") from None
    if not (read_any or _may_see(svc, principal, record)):
        raise Forbidden(NOT_YOURS, code="not_owner")
    return record


def _may_see(svc: Services, principal: Principal, record: AccessRequestRecord) -> bool:
    if record.requester == principal.sub or owns(principal, record.customer_id):
        return True
    approvers = set(record.approver_roles)
    return record.approver == STAFF and bool(approvers & set(principal.known_roles))


def _request_id(request: Request) -> str:
    request_id = str(request.path_params["request_id"])
    if not 1 <= len(request_id) <= MAX_REQUEST_ID:
        raise BadRequest("Malformed access request id.")
    return request_id


async def _optional_body(request: Request) -> Any:
    """The JSON body, or None when there is none (approve as asked, deny without a message)."""
    if not (request.headers.get("content-length") or request.headers.get("transfer-encoding")):
        return None
    if request.headers.get("content-length") == "0":
        return None
    return await json_body(request)


def _header(event: Event) -> dict[str, str]:
    return {"X-Audit-Event-ID": event["event_id"]}


routes = [
    Route("/v1/access-requests", create_request, methods=["POST"]),
    Route("/v1/access-requests", list_requests, methods=["GET"]),
    Route("/v1/access-requests/{request_id}", get_request, methods=["GET"]),
    Route("/v1/access-requests/{request_id}/approve", approve_request, methods=["POST"]),
    Route("/v1/access-requests/{request_id}/deny", deny_request, methods=["POST"]),
    Route("/v1/access-requests/{request_id}/cancel", cancel_request, methods=["POST"]),
]
