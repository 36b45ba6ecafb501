"""The rules of contract §8 as pure functions over one `access.decision`: committed, or (for
admission) about to be decided.

What counts, and why:
- Only staff count. A customer reading their own footage (reason `owner`) is never counted,
  even when the same token also carries a staff role.
- A *view* is an allowed GET of a clip answered 200 or 206: footage left the gateway.
- Metadata is footage (contract §8): any allowed staff request on a customer, a clip by GET or
  HEAD or a listing, whatever storage then answers, shows something of that customer (a HEAD
  or a 404 says when someone was home), so it counts toward `customer_browsing`. It is counted
  at admission, before the request is served, and that count is what admission checks.
- `bulk_viewing` counts distinct clips viewed: a video player fetches one clip in many ranged
  requests, and that is one clip watched, not thirty. HEAD, listings and 404s are no view.
- `clip_probing` counts distinct missing clips asked for (allowed requests answered 404): a
  sweep of guessed clip ids finds out when a camera recorded without fetching any footage.
- A *denial* is a 403 decision; `principal_suspended` is not counted again (the principal is
  already stopped, and counting would only pile flags onto a closed case).
- The single-event rules (`break_glass`, `legal_request`, `off_hours`) fire on any allowed
  access (view, HEAD or listing); `private_zone_access` on views of a private camera.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.detection.config import DetectionConfig
from gateway.detection.counters import Gate, Tally
from gateway.types import (
    STAFF_ROLES,
    AccessRequest,
    Action,
    Decision,
    EventType,
    Purpose,
    Severity,
    Verdict,
    Zone,
    format_ts,
    parse_ts,
)

STAFF_ROLE_NAMES = frozenset(str(r) for r in STAFF_ROLES)
# Refusals that say nothing new about the caller: already suspended (or at a suspend threshold),
# or detection could not count. Neither is a `repeated_denials` denial.
# A playback URL refused because its session ended is the player's retry, not the caller's.
NOT_THE_CALLERS = frozenset({"principal_suspended", "detection_unavailable", "playback_ended"})
# A view is a GET's 200/206, or a playback session started (201): counted once per playback,
# however many ranges its player then reads (contract §12).
VIEW_STATUSES = (200, 201, 206)
VIEW_KINDS = frozenset({str(Action.VIEW), "playback"})


@dataclass(frozen=True, slots=True)
class Access:
    """The facts of one staff access decision that the rules look at."""

    event_id: str
    principal: str
    at: datetime
    kind: str  # view | head | list
    allowed: bool
    status: int | None
    reason: str
    customer_id: str | None
    clip_key: str | None
    zone: str | None
    purpose: str | None

    @property
    def is_view(self) -> bool:
        """Footage of one clip left the gateway."""
        return self.allowed and self.kind in VIEW_KINDS and self.status in VIEW_STATUSES

    @property
    def shows_customer(self) -> bool:
        """Any allowed request on the customer's footage or its metadata (see the docstring)."""
        return self.allowed and self.customer_id is not None

    @property
    def is_probe(self) -> bool:
        """An allowed request for a clip that is not there."""
        return self.allowed and self.clip_key is not None and self.status == 404

    @property
    def is_denial(self) -> bool:
        return not self.allowed and self.status == 403 and self.reason not in NOT_THE_CALLERS


def is_counted(roles: Iterable[str], reason: str | None) -> bool:
    """Whether detection looks at this caller's access at all (the module docstring says who)."""
    if not STAFF_ROLE_NAMES.intersection(roles):
        return False  # customers are never counted
    return reason != "owner"  # their own footage, whatever other role the token has


def access_of(event: dict[str, Any]) -> Access | None:
    """The staff access in a committed event, or None when no rule looks at this event."""
    if event.get("type") != str(EventType.ACCESS_DECISION) or not event.get("principal"):
        return None
    if not is_counted(event.get("roles") or (), event.get("reason")):
        return None
    detail = event.get("detail") or {}
    clip = event.get("clip_id")
    kind = "head" if detail.get("method") == "HEAD" else str(event.get("action") or "")
    return Access(
        event_id=str(event["event_id"]),
        principal=str(event["principal"]),
        at=parse_ts(str(event["ts"])),
        kind=kind,
        allowed=event.get("decision") == Verdict.ALLOW,
        status=event.get("status"),
        reason=str(event.get("reason") or ""),
        customer_id=event.get("customer_id"),
        clip_key=f"{event.get('customer_id')}/{event.get('camera_id')}/{clip}" if clip else None,
        zone=detail.get("zone"),
        purpose=event.get("purpose"),
    )


def attempt_of(
    request: AccessRequest, decision: Decision, method: str, clip_id: str | None
) -> Access | None:
    """The staff access an allowed decision is about to make, or None when no rule counts it."""
    principal = request.principal
    if not decision or not is_counted(principal.roles, decision.reason):
        return None
    camera = request.camera
    return Access(
        event_id="",  # not committed yet
        principal=principal.sub,
        at=request.now,
        kind="head" if method == "HEAD" else str(request.action),
        allowed=True,
        status=None,  # not answered yet: admission counts only what needs no answer
        reason=decision.reason,
        customer_id=camera.customer_id,
        clip_key=f"{camera.key}/{clip_id}" if clip_id else None,
        zone=str(request.zone),
        purpose=str(request.purpose) if request.purpose else None,
    )


@dataclass(frozen=True, slots=True)
class WindowRule:
    """A threshold over a sliding window: which accesses count, and as what member."""

    name: str
    counts: Callable[[Access], bool]
    member: Callable[[Access], str]


WINDOW_RULES = (
    WindowRule("customer_browsing", lambda a: a.shows_customer, lambda a: a.customer_id or ""),
    WindowRule("bulk_viewing", lambda a: a.is_view, lambda a: a.clip_key or ""),
    WindowRule("repeated_denials", lambda a: a.is_denial, lambda a: a.event_id),
    WindowRule("clip_probing", lambda a: a.is_probe, lambda a: a.clip_key or ""),
)
# The rules whose count is known before a request is served: admission counts them (and the
# committed event adds the same member again, which counts nothing new). The others count
# what only the answer shows (a view, a denial, a 404), after the commit; admission checks them.
COUNTED_AT_ADMISSION = frozenset({"customer_browsing"})


def _break_glass(access: Access, _config: DetectionConfig) -> bool:
    return access.allowed and access.purpose == Purpose.EMERGENCY


def _legal(access: Access, _config: DetectionConfig) -> bool:
    return access.allowed and access.purpose == Purpose.LEGAL_REQUEST


def _private(access: Access, _config: DetectionConfig) -> bool:
    return access.is_view and access.zone == Zone.PRIVATE


def _off_hours(access: Access, config: DetectionConfig) -> bool:
    return access.allowed and not config.working_hours.contains(access.at)


INSTANT_RULES: dict[str, Callable[[Access, DetectionConfig], bool]] = {
    "private_zone_access": _private,
    "break_glass": _break_glass,
    "legal_request": _legal,
    "off_hours": _off_hours,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired for one access: flag it, and maybe suspend the principal."""

    rule: str
    severity: Severity
    window_seconds: float
    count: int = 1
    threshold: int | None = None
    suspend: bool = False

    def window_key(self, at: datetime) -> str:
        """The fixed window this moment falls in: one flag per principal, rule and window."""
        start = int(at.timestamp() // self.window_seconds * self.window_seconds)
        return format_ts(datetime.fromtimestamp(start, UTC))


def counter_key(rule: str, principal: str) -> str:
    return f"{rule}:{principal}"


def tallies_for(access: Access, config: DetectionConfig) -> list[tuple[str, Tally]]:
    """What the window rules count for this access, as (rule name, tally)."""
    out = []
    for rule in WINDOW_RULES:
        conf = config.rule(rule.name)
        if conf is None or not rule.counts(access):
            continue
        tally = Tally(
            counter_key(rule.name, access.principal),
            rule.member(access),
            access.at.timestamp(),
            conf.window_seconds,
        )
        out.append((rule.name, tally))
    return out


def admission_gates(access: Access, config: DetectionConfig) -> list[tuple[str, Gate]]:
    """What admitting this access must check, as (rule name, gate): every window rule with a
    suspend threshold; the ones counted at admission also count this access."""
    out = []
    for rule in WINDOW_RULES:
        conf = config.rule(rule.name)
        if conf is None or conf.suspend_at is None:
            continue
        counts = rule.name in COUNTED_AT_ADMISSION and rule.counts(access)
        tally = Tally(
            counter_key(rule.name, access.principal),
            rule.member(access) if counts else "",
            access.at.timestamp(),
            conf.window_seconds,
        )
        out.append((rule.name, Gate(tally, conf.suspend_at, counts)))
    return out


def window_findings(counted: list[tuple[str, int]], config: DetectionConfig) -> list[Finding]:
    """The window rules whose count reached their flag threshold."""
    found = []
    for name, count in counted:
        conf = config.rule(name)
        if conf is None or conf.flag_at is None or count < conf.flag_at:
            continue
        suspend = conf.suspend_at is not None and count >= conf.suspend_at
        found.append(
            Finding(name, conf.severity, conf.window_seconds, count, conf.flag_at, suspend)
        )
    return found


def instant_findings(access: Access, config: DetectionConfig) -> list[Finding]:
    """The single-event rules this access trips."""
    found = []
    for name, fires in INSTANT_RULES.items():
        conf = config.rule(name)
        if conf is not None and fires(access, config):
            found.append(Finding(name, conf.severity, conf.window_seconds))
    return found


def counts_for(rule: str, access: Access, config: DetectionConfig) -> bool:
    """Whether this access is evidence for the rule (used to list a new flag's events)."""
    for window_rule in WINDOW_RULES:
        if window_rule.name == rule:
            return window_rule.counts(access)
    fires = INSTANT_RULES.get(rule)
    return fires is not None and fires(access, config)
