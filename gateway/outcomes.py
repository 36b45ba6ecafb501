"""What the footage flow decided, written down: the access.decision and access.complete
events (contract §7), and the error a request that ends without footage is answered with.

The flow fills an Outcome step by step; the Recorder writes it. Every request past
authentication leaves exactly one access.decision, committed before a byte of footage leaves
(an AuditUnavailable here is the 503 that sends none), and every allowed stream one
access.complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.audit.companions import Companion
from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.calls import FootageCall, call_detail, call_fields
from gateway.errors import DetectionUnavailable, Forbidden, GatewayError
from gateway.metrics import Metrics
from gateway.notify.triggers import ViewNotices
from gateway.ranges import ByteRange
from gateway.types import ClipRef, Decision, EventType, Principal, Purpose, Verdict, Zone

log = structlog.get_logger("gateway.outcomes")

Observer = Callable[[Event], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    """What the flow decided, filled in step by step and written as the decision event."""

    principal: Principal | None  # None: the caller could not be authenticated
    decision: Decision
    status: int = 200
    zone: Zone = Zone.PRIVATE
    byte_range: ByteRange | None = None
    error: GatewayError | None = None  # why it ended without footage, if not a denial


@dataclass(frozen=True, slots=True)
class Recorder:
    """Writes a footage request's events, counts them, and shows each decision to detection."""

    audit: AuditLog
    metrics: Metrics
    observers: Sequence[Observer] = ()
    notices: ViewNotices | None = None  # the customer notifications a view causes (§14)

    async def decision(
        self, call: FootageCall, outcome: Outcome, companions: Sequence[Companion] = ()
    ) -> Event:
        """Write the one access.decision event for this request, then tell the observers.

        `companions` are rows that stand iff the decision does (a playback's session row):
        they commit in its transaction (gateway/audit/companions.py).
        """
        decision = outcome.decision
        event = new_event(
            EventType.ACCESS_DECISION,
            **call_fields(call, outcome.principal),
            decision=Verdict.ALLOW if decision else Verdict.DENY,
            reason=decision.reason,
            grant_id=decision.grant_id,
            status=outcome.status,
            range=range_text(outcome.byte_range),
            detail={
                "rule": decision.rule,
                "zone": str(outcome.zone),
                "method": call.method,
                **call_detail(call),
            },
        )
        # The notifications this view causes commit in the same batch as its decision.
        notices = self.notices.rows(event) if self.notices is not None else ()
        rows = [*companions, *notices]
        committed = await self.audit.append(event, rows)  # AuditUnavailable → 503, nothing served
        if notices and self.notices is not None:
            self.notices.remember(notices)
        self.metrics.decision_committed(committed["decision"], decision.reason)
        for observer in self.observers:
            try:
                await observer(committed)
            except Exception as exc:  # detection never turns an allowed view into a 500
                log.error("observer_failed", error=str(exc))
        return committed

    async def complete(
        self,
        call: FootageCall,
        outcome: Outcome,
        clip: ClipRef,
        bytes_sent: int | None,
        completed: bool,
        delivered_by: str | None = None,
        ended: dict[str, str | None] | None = None,
    ) -> None:
        """The access.complete event. bytes_sent None: another server sent the bytes
        (`delivered_by`: a presigned S3 URL or nginx), so the gateway cannot know how many."""
        if bytes_sent is not None:  # counted even if the event below cannot be: they are gone
            self.metrics.footage_sent(bytes_sent)
        event = new_event(
            EventType.ACCESS_COMPLETE,
            **call_fields(call, outcome.principal),
            decision=Verdict.ALLOW,
            grant_id=outcome.decision.grant_id,
            status=outcome.status,
            range=range_text(outcome.byte_range),
            bytes_sent=bytes_sent,
            detail={
                "completed": completed,
                "clip": clip.key,
                **({"delivered_by": delivered_by} if delivered_by else {}),
                **(ended or {}),  # why the stream was cut: its permission ended mid-stream
                **call_detail(call),
            },
        )
        try:
            await self.audit.append(event)
        except GatewayError as exc:  # the bytes are gone already; say so loudly
            log.error(
                "access_complete_not_recorded",
                request_id=call.request_id,
                bytes_sent=bytes_sent,
                error=exc.message,
            )


def failed(outcome: Outcome, exc: Exception) -> None:
    """An unexpected error while deciding: a denial, audited, and the contract's 500."""
    log.error("decision_failed", error=repr(exc), exc_info=exc)
    outcome.decision = Decision.deny("internal_error", "error")
    outcome.status = 500
    outcome.error = GatewayError("The gateway failed to decide this request.")


def range_text(byte_range: ByteRange | None) -> str | None:
    return f"bytes={byte_range.start}-{byte_range.end}" if byte_range else None


def error_for(
    outcome: Outcome, headers: dict[str, str], call: FootageCall | None = None
) -> GatewayError:
    """The error response for a request that ends without footage, with its audit event id."""
    if outcome.error is not None:
        outcome.error.headers.update(headers)
        return outcome.error
    reason = outcome.decision.reason
    message = DENIAL_MESSAGES.get(reason, "Access denied.")
    if reason == DetectionUnavailable.code:
        return DetectionUnavailable(message, headers=headers)
    extra = how_to_ask(call) if call is not None and reason in ASKABLE else None
    return Forbidden(message, code=reason, headers=headers, extra=extra)


# Refusals an access request can cure (contract §13): the answer says how to ask.
ASKABLE = frozenset({"no_grant", "approval_required"})
ACCESS_REQUESTS_PATH = "/v1/access-requests"


def how_to_ask(call: FootageCall) -> dict[str, Any]:
    """Where to ask for access, prefilled with what the caller sent (nothing they did not)."""
    prefill: dict[str, Any] = {"customer_id": call.customer_id, "cameras": [call.camera_id]}
    if call.purpose in Purpose._value2member_map_:
        prefill["purpose"] = call.purpose
    return {"how_to_ask": {"method": "POST", "path": ACCESS_REQUESTS_PATH, "body": prefill}}


def denied_status(decision: Decision) -> int:
    """403, except that detection unable to count is the service failing, not the caller: 503."""
    return DetectionUnavailable.status if decision.reason == DetectionUnavailable.code else 403


DENIAL_MESSAGES = {
    "purpose_required": "Staff must declare X-Access-Purpose.",
    "justification_required": "Staff must give X-Access-Justification (a ticket or case).",
    "purpose_not_permitted": "This purpose is not permitted for your role.",
    "no_grant": "No active grant from the owner covers this request; ask with an access request.",
    "approval_required": "This purpose needs an approved access request (staff sign-off).",
    "zone_restricted": "This camera's zone is not covered for you.",
    "not_owner": "This footage belongs to another customer.",
    "principal_suspended": "This principal is suspended.",
    "detection_unavailable": "Staff access is refused while detection cannot count it.",
    "forbidden": "Access denied.",
}
