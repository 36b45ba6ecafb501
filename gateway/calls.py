"""One footage request as the HTTP layer read it, still untrusted, and its validation.

The pipeline resolves a call into typed references (resolve_camera, resolve_clip) and staff
headers (staff_headers) before anything else touches it, and stamps every audit event about
the request with the same length-capped fields (call_fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest
from gateway.types import (
    Action,
    CameraRef,
    ClipRef,
    Principal,
    Purpose,
    clip_recorded_at,
    is_valid_id,
)

MAX_JUSTIFICATION = 500
MIN_JUSTIFICATION = 3


@dataclass(frozen=True, slots=True)
class FootageCall:
    """What the HTTP layer read off one footage request, still untrusted."""

    method: str
    action: Action
    customer_id: str
    camera_id: str
    clip_id: str | None
    authorization: str | None
    purpose: str | None
    justification: str | None
    range_header: str | None
    request_id: str
    client_ip: str | None
    user_agent: str | None
    path_problem: str | None = None  # why the path names no footage (audited as a 400)
    if_match: str | None = None  # the conditional headers (gateway/conditionals.py)
    if_none_match: str | None = None
    if_range: str | None = None
    client_request_id: str | None = None  # the caller's own X-Request-ID, never ours
    event_action: str | None = None  # the events' `action` when not `action` (playback, §12)


def resolve_camera(call: FootageCall) -> CameraRef:
    """The camera a footage path names, or BadRequest (before any storage or database call)."""
    if call.path_problem:
        raise BadRequest(call.path_problem)
    if not (is_valid_id(call.customer_id) and is_valid_id(call.camera_id)):
        raise BadRequest("Customer and camera ids must be 1 to 64 letters, digits, _ or -.")
    return CameraRef(call.customer_id, call.camera_id)


def resolve_clip(call: FootageCall) -> ClipRef:
    """The clip a footage path names, its recording time parsed, or BadRequest."""
    camera = resolve_camera(call)
    recorded_at = clip_recorded_at(call.clip_id or "")
    if recorded_at is None:
        raise BadRequest("A clip id is its UTC recording time, YYYYMMDDTHHMMSSZ[-suffix][.ext].")
    assert call.clip_id is not None
    return ClipRef(camera.customer_id, camera.camera_id, call.clip_id, recorded_at)


def staff_headers(call: FootageCall) -> tuple[Purpose | None, str | None]:
    """X-Access-Purpose and X-Access-Justification, validated; absent stays None."""
    purpose = None
    if call.purpose is not None:
        if call.purpose not in Purpose._value2member_map_:
            raise BadRequest("X-Access-Purpose must be one of " + ", ".join(Purpose) + ".")
        purpose = Purpose(call.purpose)
    justification = (call.justification or "").strip() or None
    if justification is not None and not (
        MIN_JUSTIFICATION <= len(justification) <= MAX_JUSTIFICATION
    ):
        raise BadRequest("X-Access-Justification must be 3 to 500 characters.")
    return purpose, justification


def call_detail(call: FootageCall) -> dict[str, Any]:
    """The `detail` facts every event about this request carries beside its own."""
    return {"client_request_id": call.client_request_id} if call.client_request_id else {}


def call_fields(call: FootageCall, principal: Principal | None) -> dict[str, Any]:
    """The fields every event about this request carries (ids as given, length-capped)."""
    return {
        "request_id": call.request_id,
        "principal": principal.sub if principal else None,
        "roles": sorted(principal.roles) if principal else None,
        "purpose": _storable(call.purpose, 64),
        "justification": _storable(call.justification, MAX_JUSTIFICATION),
        "action": call.event_action or ("delete" if call.method == "DELETE" else str(call.action)),
        "customer_id": _storable(call.customer_id, 64) or "",
        "camera_id": _storable(call.camera_id, 64) or "",
        "clip_id": _storable(call.clip_id, 80),
        "client_ip": call.client_ip,
        "user_agent": _storable(call.user_agent, 300),
    }


def _storable(text: str | None, limit: int) -> str | None:
    """Caller text as the audit log can keep it: capped, and a NUL (a `%00` the router decoded
    from the path) shown as U+FFFD, since PostgreSQL text refuses NUL and the event must be
    written for the request to be answered at all (contract §7). Empty is None."""
    return text[:limit].replace("\x00", "\ufffd") if text else None
