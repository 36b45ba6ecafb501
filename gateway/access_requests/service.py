"""Access requests' state changes: each one a change and its audit events in one transaction.

Every change of a request's state goes through `_transition(conn, …)`, inside the transaction
that also writes its audit events (gateway/audit/atomic.py). Hooks registered with
`on_transition` run there too, on the same connection: a notification outbox row added by a
hook commits with the change and its event, or not at all (contract §13).

Who may answer is checked inside the same transaction as the answer, against the row as it is
then: the customer who owns the footage (or, for a purpose in approvals.toml, N distinct staff
approvers), never the requester, never a staff token for a customer's request.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy.engine import Connection

from gateway.access_requests.models import CUSTOMER, AccessRequestRecord, parse_narrowing
from gateway.access_requests.store import AccessRequestStore
from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.authz import STAFF_APPROVAL
from gateway.errors import BadRequest, Conflict, Forbidden
from gateway.grants import CUSTOMER_APPROVAL, Grant, GrantStore
from gateway.types import EventType, Principal, RequestState, Role

ACTOR = "gateway:requests"  # who the audit log names for an expiry
MakeEvent = Callable[..., Event]  # (event_type, **fields) → an event by the caller


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of a request, as hooks see it inside its transaction."""

    request: AccessRequestRecord  # as it is after the change
    previous: RequestState | None  # None: just created
    event_type: EventType
    actor: str
    at: datetime
    grant: Grant | None = None


TransitionHook = Callable[[Connection, Transition], None]


@dataclass(frozen=True, slots=True)
class Answer:
    """What an approval did: the request after it, and the grant when it is now approved."""

    request: AccessRequestRecord
    grant: Grant | None
    events: list[Event]


class AccessRequests:
    """Create, answer and expire access requests (the API and the sweep call these)."""

    def __init__(self, store: AccessRequestStore, grants: GrantStore, audit: AuditLog) -> None:
        self.store = store
        self.grants = grants
        self.audit = audit
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._hooks: list[TransitionHook] = []

    def on_transition(self, hook: TransitionHook) -> None:
        """Run hook(conn, transition) inside every state change's transaction."""
        self._hooks.append(hook)

    def _transition(self, conn: Connection, transition: Transition) -> None:
        for hook in self._hooks:  # a hook that raises rolls the change and its event back
            hook(conn, transition)

    async def create(
        self, record: AccessRequestRecord, make_event: MakeEvent
    ) -> tuple[AccessRequestRecord, Event]:
        """Store a new pending request with its access_request.created event."""

        def change(conn: Connection) -> AccessRequestRecord:
            self.store.insert(conn, record)
            self._transition(
                conn,
                Transition(
                    record,
                    None,
                    EventType.ACCESS_REQUEST_CREATED,
                    record.requester,
                    record.created_at,
                ),
            )
            return record

        now = self.clock()
        event = make_event(
            EventType.ACCESS_REQUEST_CREATED,
            action="access_request.create",
            customer_id=record.customer_id,
            purpose=record.purpose,
            justification=record.ticket,
            detail=record.as_json(now),
        )
        stored, sealed = await self.audit.commit_with_all(change, lambda _: [event])
        return stored, sealed[0]

    async def approve(
        self, principal: Principal, request_id: str, body: Any, make_event: MakeEvent
    ) -> Answer:
        """One approval: the customer's (with narrowing), or one of N staff approvals."""
        now = self.clock()
        answer, sealed = await self.audit.commit_with_all(
            lambda conn: self._approve(conn, principal, request_id, body, now, make_event),
            lambda done: done.events,
        )
        return replace(answer, events=sealed)

    def _approve(
        self,
        conn: Connection,
        principal: Principal,
        request_id: str,
        body: Any,
        now: datetime,
        make_event: MakeEvent,
    ) -> Answer:
        asked = self.store.get(request_id, conn)
        check_answerer(principal, asked)  # standing first: a stranger learns nothing more
        asked = self._pending(conn, request_id, now)
        if asked.approver == CUSTOMER:
            narrowed = parse_narrowing(body, asked)
            return self._grant(conn, asked, narrowed, principal, now, make_event)
        if body not in (None, {}):
            raise BadRequest("A staff approval does not narrow the request: send no body.")
        if not self.store.add_approval(conn, request_id, principal.sub, now):
            raise Conflict("You have already approved this request.", code="already_approved")
        approved = self.store.get(request_id, conn)
        if len(approved.approvals) >= approved.approvals_needed:
            return self._grant(conn, approved, approved, principal, now, make_event)
        self._transition(
            conn,
            Transition(
                approved,
                RequestState.PENDING,
                EventType.ACCESS_REQUEST_APPROVAL_ADDED,
                principal.sub,
                now,
            ),
        )
        event = make_event(
            EventType.ACCESS_REQUEST_APPROVAL_ADDED,
            action="access_request.approve",
            customer_id=approved.customer_id,
            purpose=approved.purpose,
            detail={
                "request_id": request_id,
                "approvals": list(approved.approvals),
                "approvals_needed": approved.approvals_needed,
            },
        )
        return Answer(approved, None, [event])

    def _grant(
        self,
        conn: Connection,
        asked: AccessRequestRecord,
        narrowed: AccessRequestRecord,
        principal: Principal,
        now: datetime,
        make_event: MakeEvent,
    ) -> Answer:
        """Approve: the grant, linked both ways, in the transaction of the state change."""
        grant = grant_for(narrowed, principal.sub, now)
        if not self.store.answer(
            conn,
            narrowed.request_id,
            RequestState.APPROVED,
            by=principal.sub,
            now=now,
            grant_id=grant.grant_id,
        ):
            raise Conflict("This request has already been answered.")
        self.grants.create(grant, conn)
        approved = self.store.get(narrowed.request_id, conn)
        self._transition(
            conn,
            Transition(
                approved,
                RequestState.PENDING,
                EventType.ACCESS_REQUEST_APPROVED,
                principal.sub,
                now,
                grant,
            ),
        )
        common = {
            "customer_id": grant.customer_id,
            "grant_id": grant.grant_id,
            "purpose": grant.purpose,
        }
        events = [
            make_event(
                EventType.ACCESS_REQUEST_APPROVED,
                action="access_request.approve",
                **common,
                detail={
                    "request_id": approved.request_id,
                    "approvals": list(approved.approvals),
                    "narrowed": narrowing(asked, narrowed),
                    "request": approved.as_json(now),
                },
            ),
            make_event(
                EventType.GRANT_CREATED, action="grant.create", **common, detail=grant.as_json(now)
            ),
        ]
        return Answer(approved, grant, events)

    async def deny(
        self, principal: Principal, request_id: str, message: str | None, make_event: MakeEvent
    ) -> tuple[AccessRequestRecord, Event]:
        """One answerer's no closes the request (staff approval needs N yeses, one no)."""
        return await self._close(
            principal,
            request_id,
            RequestState.DENIED,
            EventType.ACCESS_REQUEST_DENIED,
            "access_request.deny",
            make_event,
            message=message,
        )

    async def cancel(
        self, principal: Principal, request_id: str, make_event: MakeEvent
    ) -> tuple[AccessRequestRecord, Event]:
        """The requester withdraws a pending request."""
        return await self._close(
            principal,
            request_id,
            RequestState.CANCELLED,
            EventType.ACCESS_REQUEST_CANCELLED,
            "access_request.cancel",
            make_event,
        )

    async def _close(
        self,
        principal: Principal,
        request_id: str,
        state: RequestState,
        event_type: EventType,
        action: str,
        make_event: MakeEvent,
        message: str | None = None,
    ) -> tuple[AccessRequestRecord, Event]:
        now = self.clock()

        def change(conn: Connection) -> tuple[AccessRequestRecord, Event]:
            asked = self.store.get(request_id, conn)
            if state is RequestState.CANCELLED:
                if principal.sub != asked.requester:
                    raise Forbidden("Only the requester may cancel.", code="not_requester")
            else:
                check_answerer(principal, asked)
            self._pending(conn, request_id, now)
            if not self.store.answer(
                conn, request_id, state, by=principal.sub, now=now, message=message
            ):
                raise Conflict("This request has already been answered.")
            done = self.store.get(request_id, conn)
            self._transition(
                conn, Transition(done, RequestState.PENDING, event_type, principal.sub, now)
            )
            event = make_event(
                event_type,
                action=action,
                customer_id=done.customer_id,
                purpose=done.purpose,
                detail={"request_id": request_id, "message": message},
            )
            return done, event

        (done, _), sealed = await self.audit.commit_with_all(change, lambda result: [result[1]])
        return done, sealed[0]

    async def expire_due(self) -> int:
        """Mark every pending request past its expiry expired, each with its event; a request
        another replica expired first is skipped (its conditional UPDATE changed nothing)."""
        now = self.clock()
        expired = 0
        for request_id in await anyio.to_thread.run_sync(self.store.pending_past, now):
            _, sealed = await self.audit.commit_with_all(
                functools.partial(self._expire, request_id=request_id, now=now),
                lambda result: [result] if result is not None else [],
            )
            expired += len(sealed)
        return expired

    def _expire(self, conn: Connection, request_id: str, now: datetime) -> Event | None:
        if not self.store.answer(
            conn, request_id, RequestState.EXPIRED, by=ACTOR, now=now, unexpired=False
        ):
            return None
        done = self.store.get(request_id, conn)
        self._transition(
            conn,
            Transition(done, RequestState.PENDING, EventType.ACCESS_REQUEST_EXPIRED, ACTOR, now),
        )
        return new_event(
            EventType.ACCESS_REQUEST_EXPIRED,
            principal=ACTOR,
            action="access_request.expire",
            customer_id=done.customer_id,
            purpose=done.purpose,
            detail={"request_id": request_id, "expires_at": done.as_json(now)["expires_at"]},
        )

    def _pending(self, conn: Connection, request_id: str, now: datetime) -> AccessRequestRecord:
        asked = self.store.get(request_id, conn)
        state = asked.state_at(now)
        if state is not RequestState.PENDING:
            raise Conflict(f"This request is {state}, no longer pending.")
        return asked


def check_answerer(principal: Principal, asked: AccessRequestRecord) -> None:
    """Who may approve or deny: never the requester; the owning customer for a customer's
    request (a staff token never); a holder of an approver role for a staff-approved one."""
    if principal.sub == asked.requester:
        raise Forbidden("No one answers their own request.", code="self_approval")
    if asked.approver == CUSTOMER:
        roles = principal.known_roles
        if Role.CUSTOMER not in roles or principal.customer_id != asked.customer_id:
            raise Forbidden("Only the customer who owns this footage answers.", code="not_owner")
        return
    if not principal.known_roles & {Role(r) for r in asked.approver_roles}:
        raise Forbidden("Your roles do not approve this request.", code="not_approver")


def grant_for(request: AccessRequestRecord, approver: str, now: datetime) -> Grant:
    """The grant an approved request becomes: to the requester, from now for its duration."""
    return Grant(
        grant_id="gr_" + secrets.token_urlsafe(12),
        customer_id=request.customer_id,
        grantee=request.requester,
        purpose=request.purpose,
        cameras=request.cameras,
        footage_from=request.footage_from,
        footage_until=request.footage_until,
        expires_at=now + timedelta(seconds=request.duration_seconds),
        ticket=request.ticket,
        include_private=request.include_private,
        created_at=now,
        created_by=approver,
        request_id=request.request_id,
        approval=CUSTOMER_APPROVAL if request.approver == CUSTOMER else STAFF_APPROVAL,
    )


def narrowing(asked: AccessRequestRecord, granted: AccessRequestRecord) -> dict[str, Any]:
    """What the approver changed, field by field (empty: approved as asked)."""
    fields = ("cameras", "footage_from", "footage_until", "duration_seconds", "include_private")
    before, after = asked.as_json(asked.created_at), granted.as_json(asked.created_at)
    return {f: after[f] for f in fields if before[f] != after[f]}
