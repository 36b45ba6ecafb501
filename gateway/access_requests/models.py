"""An access request as a value: parsing a new one, the approver's narrowing, its JSON.

A request asks for exactly what a grant would give (contract §13): cameras, a stretch of
footage, a purpose and a ticket, for a duration that starts when it is approved. It is
validated by the grant's own field rules (gateway/grants.py), so a 400 names the same field.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gateway.approvals import ApprovalsConfig
from gateway.errors import BadRequest
from gateway.grants import (
    ALL_CAMERAS,
    field_cameras,
    field_flag,
    field_purpose,
    field_ticket,
    field_time,
)
from gateway.types import Principal, Purpose, RequestState, format_ts, is_valid_id

CUSTOMER = "customer"  # who approves: the owning customer …
STAFF = "staff"  # … or staff approvers (policies/approvals.toml)
MAX_REASON = 2000
MAX_MESSAGE = 2000
MIN_DURATION = 60
DEFAULT_DURATION = 3600
NEW_FIELDS = frozenset(
    {
        "customer_id",
        "cameras",
        "footage_from",
        "footage_until",
        "purpose",
        "ticket",
        "reason",
        "duration_seconds",
        "include_private",
    }
)
NARROWING_FIELDS = frozenset(
    {"cameras", "footage_from", "footage_until", "duration_seconds", "include_private"}
)


@dataclass(frozen=True, slots=True)
class AccessRequestRecord:
    """One access request as stored; `approvals` are the staff approvers so far."""

    request_id: str
    customer_id: str
    requester: str
    purpose: str
    cameras: tuple[str, ...]
    footage_from: datetime
    footage_until: datetime
    ticket: str
    reason: str
    duration_seconds: int
    include_private: bool
    approver: str
    approvals_needed: int
    approver_roles: tuple[str, ...]
    state: RequestState
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None = None
    answered_by: str | None = None
    message: str | None = None
    grant_id: str | None = None
    approvals: tuple[str, ...] = ()

    def state_at(self, now: datetime) -> RequestState:
        """The state as callers see it: a pending request past its expiry is expired, even
        before the sweep has written it down (the sweep only records what is already so)."""
        if self.state is RequestState.PENDING and now >= self.expires_at:
            return RequestState.EXPIRED
        return self.state

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "customer_id": self.customer_id,
            "requester": self.requester,
            "purpose": self.purpose,
            "cameras": list(self.cameras),
            "footage_from": format_ts(self.footage_from),
            "footage_until": format_ts(self.footage_until),
            "ticket": self.ticket,
            "reason": self.reason,
            "duration_seconds": self.duration_seconds,
            "include_private": self.include_private,
            "approver": self.approver,
            "approvals_needed": self.approvals_needed,
            "approver_roles": list(self.approver_roles),
            "approvals": list(self.approvals),
            "state": self.state_at(now),
            "created_at": format_ts(self.created_at),
            "expires_at": format_ts(self.expires_at),
            "answered_at": format_ts(self.answered_at) if self.answered_at else None,
            "answered_by": self.answered_by,
            "message": self.message,
            "grant_id": self.grant_id,
        }


def parse_new_request(
    body: Any,
    requester: Principal,
    now: datetime,
    *,
    ttl_seconds: int,
    max_duration: int,
    approvals: ApprovalsConfig,
) -> AccessRequestRecord:
    """Validate a POST /v1/access-requests body; BadRequest names the first bad field."""
    if not isinstance(body, Mapping):
        raise BadRequest("The body must be a JSON object.")
    extra = sorted(set(body) - NEW_FIELDS)
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str) or not is_valid_id(customer_id):
        raise BadRequest("customer_id must be 1 to 64 letters, digits, _ or -.")
    purpose = field_purpose(body.get("purpose"))
    if purpose == Purpose.EMERGENCY:
        raise BadRequest("purpose emergency is break-glass: it is never requested, only reviewed.")
    footage_from = field_time(body, "footage_from")
    footage_until = field_time(body, "footage_until")
    if footage_from >= footage_until:
        raise BadRequest("footage_from must be before footage_until.")
    staff = approvals.staff_approval(purpose)
    return AccessRequestRecord(
        request_id="ar_" + secrets.token_urlsafe(12),
        customer_id=customer_id,
        requester=requester.sub,
        purpose=purpose,
        cameras=field_cameras(body.get("cameras")),
        footage_from=footage_from,
        footage_until=footage_until,
        ticket=field_ticket(body.get("ticket")),
        reason=_text(body.get("reason"), "reason", MAX_REASON, required=True) or "",
        duration_seconds=_duration(body.get("duration_seconds", DEFAULT_DURATION), max_duration),
        include_private=field_flag(body.get("include_private", False)),
        approver=STAFF if staff else CUSTOMER,
        approvals_needed=staff.approvals if staff else 1,
        approver_roles=tuple(sorted(staff.roles)) if staff else (),
        state=RequestState.PENDING,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )


def parse_narrowing(body: Any, asked: AccessRequestRecord) -> AccessRequestRecord:
    """The request as the customer approves it: each given field may only narrow what was
    asked (a subset of cameras, a window inside the asked one, a shorter duration, private
    cameras only if asked for). BadRequest names the field that would widen it."""
    if body is None:
        return asked
    if not isinstance(body, Mapping):
        raise BadRequest("The body must be a JSON object.")
    extra = sorted(set(body) - NARROWING_FIELDS)
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    narrowed = asked
    if "cameras" in body:
        narrowed = replace(narrowed, cameras=_narrow_cameras(body["cameras"], asked.cameras))
    if "footage_from" in body:
        narrowed = replace(narrowed, footage_from=field_time(body, "footage_from"))
    if "footage_until" in body:
        narrowed = replace(narrowed, footage_until=field_time(body, "footage_until"))
    if narrowed.footage_from < asked.footage_from:
        raise BadRequest("footage_from may not be earlier than the request's.")
    if narrowed.footage_until > asked.footage_until:
        raise BadRequest("footage_until may not be later than the request's.")
    if narrowed.footage_from >= narrowed.footage_until:
        raise BadRequest("footage_from must be before footage_until.")
    if "duration_seconds" in body:
        duration = _duration(body["duration_seconds"], asked.duration_seconds)
        narrowed = replace(narrowed, duration_seconds=duration)
    if "include_private" in body:
        private = field_flag(body["include_private"])
        if private and not asked.include_private:
            raise BadRequest("include_private may only be true when the request asked for it.")
        narrowed = replace(narrowed, include_private=private)
    return narrowed


def parse_message(body: Any) -> str | None:
    """A deny's optional `{"message": "…"}` (at most 2000 characters)."""
    if body is None:
        return None
    if not isinstance(body, Mapping):
        raise BadRequest("The body must be a JSON object.")
    extra = sorted(set(body) - {"message"})
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    return _text(body.get("message"), "message", MAX_MESSAGE, required=False)


def _narrow_cameras(value: Any, asked: tuple[str, ...]) -> tuple[str, ...]:
    cameras = field_cameras(value)
    if ALL_CAMERAS in asked:
        return cameras
    if ALL_CAMERAS in cameras or not set(cameras) <= set(asked):
        raise BadRequest("cameras must be a subset of the cameras asked for.")
    return cameras


def _duration(value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_DURATION <= value <= most:
        raise BadRequest(f"duration_seconds must be a whole number from {MIN_DURATION} to {most}.")
    return value


def _text(value: Any, field: str, most: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise BadRequest(f"{field} must be 1 to {most} characters of text.")
    return value
