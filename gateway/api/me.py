"""The customer's own view: every access decision on their footage, and every notification
sent to them (contract §14), newest first."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import requires
from gateway.api.common import int_param, services
from gateway.audit.events import Event
from gateway.audit.store import EventQuery
from gateway.notify.outbox import MAX_PAGE
from gateway.playback.ending import PLAYBACK_ACTION
from gateway.playback.store import LIVE, Session, SessionStore, coverage
from gateway.types import STAFF_ROLES, EventType, Principal, Verdict, format_ts

ENTRY_FIELDS = (
    "seq",
    "event_id",
    "ts",
    "principal",
    "roles",
    "purpose",
    "justification",
    "action",
    "camera_id",
    "clip_id",
    "decision",
    "reason",
    "status",
    "grant_id",
    "range",
)


@requires(customer=True, message="Only a customer has an access log.", code="not_owner")
async def access_log(request: Request, principal: Principal) -> Response:
    assert principal.customer_id is not None  # requires(customer=True) saw to that
    limit = int_param(request, "limit", 50, 1, 500) or 50
    before = int_param(request, "before_seq", None, 1, 2**62)
    store = services(request).audit_store
    decisions = await anyio.to_thread.run_sync(
        store.query,
        EventQuery(
            customer_id=principal.customer_id,
            types=(str(EventType.ACCESS_DECISION),),
            before_seq=before,
            limit=limit,
            newest_first=True,
        ),
    )
    completes = await _completions(store.query, principal.customer_id, decisions)
    entries = [_entry(e, completes.get(e["request_id"])) for e in decisions]
    await _add_playback(request, decisions, entries)
    next_before = decisions[-1]["seq"] if len(decisions) == limit else None
    return JSONResponse({"events": entries, "next_before_seq": next_before})


async def _completions(query: Any, customer_id: str, decisions: list[Event]) -> dict[str, Event]:
    allowed = [e for e in decisions if e["decision"] == Verdict.ALLOW]
    if not allowed:
        return {}
    request_ids = tuple(e["request_id"] for e in allowed)
    found = await anyio.to_thread.run_sync(
        query,
        EventQuery(
            customer_id=customer_id,
            types=(str(EventType.ACCESS_COMPLETE),),
            request_ids=request_ids,
            # A request's access.complete follows its decision in the chain: the customer's
            # events from the oldest decision on (ix_audit_customer_seq; there is no index on
            # request_id, which every append would pay for: migration 0008).
            after_seq=min(int(e["seq"]) for e in allowed),
            limit=len(request_ids) * 2,
        ),
    )
    return {e["request_id"]: e for e in found}


# Free text a caller wrote: kept in the audit log as evidence, but shown to the customer only
# as a statement of staff (contract §6: only staff declare a purpose). Text written before
# anyone knew who the caller was, or by someone with no staff role (another customer, a token
# whose roles are unknown), is never shown as if a member of staff had said it
# (docs/security.md).
UNVERIFIED_TEXT = ("purpose", "justification")


def _entry(decision: Event, complete: Event | None) -> dict[str, Any]:
    entry = {k: decision.get(k) for k in ENTRY_FIELDS}
    entry["authenticated"] = decision.get("principal") is not None
    staff = not STAFF_ROLES.isdisjoint(decision.get("roles") or ())
    if not (entry["authenticated"] and staff):
        entry.update(dict.fromkeys(UNVERIFIED_TEXT))
    entry["bytes_sent"] = complete.get("bytes_sent") if complete else None
    entry["completed"] = (complete.get("detail") or {}).get("completed") if complete else None
    return entry


async def _add_playback(
    request: Request, decisions: list[Event], entries: list[dict[str, Any]]
) -> None:
    """One entry per playback (contract §12): its decision, with what was watched through it."""
    started = [
        e["request_id"]
        for e in decisions
        if e.get("action") == PLAYBACK_ACTION and e["decision"] == Verdict.ALLOW
    ]
    if not started:
        return
    store = services(request).playback.store
    sessions = await anyio.to_thread.run_sync(store.by_request_ids, started)
    for decision, entry in zip(decisions, entries, strict=True):
        session = sessions.get(decision["request_id"]) if decision.get("action") else None
        if session is not None and decision["decision"] == Verdict.ALLOW:
            entry["playback"] = await _summary(store, session)


async def _summary(store: SessionStore, session: Session) -> dict[str, Any]:
    live = session.state == LIVE
    share = session.coverage
    if live:  # not summed up yet: from the requests recorded so far
        spans = await anyio.to_thread.run_sync(store.spans, session.session_id)
        share = coverage(session.clip_size, spans)
    entry = session.as_json()
    first = await anyio.to_thread.run_sync(store.first_request_at, session.session_id)
    return {
        "session_id": session.session_id,
        "requests": session.requests,
        "bytes_sent": session.bytes_sent,
        "coverage": share,
        "started_at": entry["started_at"],
        "first_request_at": format_ts(first) if first else None,
        "last_request_at": entry["last_request_at"],
        "ended_at": format_ts(session.ended_at) if session.ended_at else None,
        "ended_reason": session.ended_reason,
        "live": live,
    }


@requires(customer=True, message="Only a customer has notifications.", code="not_owner")
async def my_notifications(request: Request, principal: Principal) -> Response:
    assert principal.customer_id is not None  # requires(customer=True) saw to that
    limit = int_param(request, "limit", 50, 1, MAX_PAGE) or 50
    before = int_param(request, "before_seq", None, 1, 2**62)
    found = await anyio.to_thread.run_sync(
        services(request).outbox.for_customer, principal.customer_id, before, limit
    )
    next_before = found[-1]["seq"] if len(found) == limit else None
    return JSONResponse({"notifications": found, "next_before_seq": next_before})


routes = [
    Route("/v1/me/access-log", access_log, methods=["GET"]),
    Route("/v1/me/notifications", my_notifications, methods=["GET"]),
]
