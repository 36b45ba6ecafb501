"""Value types shared by every step of the request flow (a leaf: imports nothing from gateway)."""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeGuard


class Role(StrEnum):
    CUSTOMER = "customer"
    SUPPORT_AGENT = "support_agent"
    SUPPORT_LEAD = "support_lead"
    TRUST_SAFETY = "trust_safety"
    LEGAL = "legal"
    SECURITY_ANALYST = "security_analyst"
    ADMIN = "admin"
    LEGAL_APPROVER = "legal_approver"  # signs off staff-approved requests (policies/approvals.toml)


class Purpose(StrEnum):
    CUSTOMER_SUPPORT = "customer_support"
    SAFETY_INVESTIGATION = "safety_investigation"
    LEGAL_REQUEST = "legal_request"
    EMERGENCY = "emergency"
    MODEL_TRAINING = "model_training"


class Zone(StrEnum):
    OUTDOOR = "outdoor"
    INDOOR = "indoor"
    PRIVATE = "private"


class Action(StrEnum):
    """What a footage request does; the Casbin policy is written in these words."""

    VIEW = "view"
    LIST = "list"


class EventType(StrEnum):
    ACCESS_DECISION = "access.decision"
    ACCESS_COMPLETE = "access.complete"
    GRANT_CREATED = "grant.created"
    GRANT_REVOKED = "grant.revoked"
    FOOTAGE_DELETE_REQUESTED = "footage.delete_requested"
    FOOTAGE_DELETED = "footage.deleted"
    FOOTAGE_DELETE_FAILED = "footage.delete_failed"
    CAMERA_UPDATED = "camera.updated"
    POLICY_RELOADED = "policy.reloaded"
    FLAG_RAISED = "flag.raised"
    FLAG_RESOLVED = "flag.resolved"
    PRINCIPAL_SUSPENDED = "principal.suspended"
    PRINCIPAL_REINSTATED = "principal.reinstated"
    RETENTION_PURGED = "retention.purged"
    ACCESS_REQUEST_CREATED = "access_request.created"
    ACCESS_REQUEST_APPROVAL_ADDED = "access_request.approval_added"
    ACCESS_REQUEST_APPROVED = "access_request.approved"
    ACCESS_REQUEST_DENIED = "access_request.denied"
    ACCESS_REQUEST_EXPIRED = "access_request.expired"
    ACCESS_REQUEST_CANCELLED = "access_request.cancelled"
    REVIEW_OPENED = "review.opened"
    REVIEW_CLOSED = "review.closed"
    PLAYBACK_ENDED = "playback.ended"
    NOTIFICATION_DELIVERED = "notification.delivered"
    NOTIFICATION_FAILED = "notification.failed"


class Verdict(StrEnum):
    """The `decision` field of access events (contract §7)."""

    ALLOW = "allow"
    DENY = "deny"


class GrantState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class RequestState(StrEnum):
    """An access request's life (contract §13): pending, then exactly one of the others."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ReviewState(StrEnum):
    """A break-glass review: open until a security analyst closes it."""

    OPEN = "open"
    CLOSED = "closed"


class Severity(StrEnum):
    """How urgent a detection flag is; a `high` flag also sends an alert."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class FlagStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class PrincipalState(StrEnum):
    """A principal's standing; a suspended one gets 403 on everything."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class DeliveryMode(StrEnum):
    """FOOTGW_DELIVERY: stream through the gateway, redirect to S3, or hand off to nginx."""

    PROXY = "proxy"
    REDIRECT = "redirect"
    ACCEL = "accel"


STAFF_ROLES = frozenset(Role) - {Role.CUSTOMER}

# §4 of the contract: ids are short and boring so they can never name anything but one object.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
# A clip id is the recording time, an optional "-suffix", and an optional ".ext": one dot at most.
CLIP_ID_PATTERN = re.compile(
    r"(?P<Y>\d{4})(?P<m>\d\d)(?P<d>\d\d)T(?P<H>\d\d)(?P<M>\d\d)(?P<S>\d\d)Z"
    r"(?:-[A-Za-z0-9_-]*)?(?:\.[A-Za-z0-9]{1,16})?",
    re.ASCII,
)
MAX_ID_LENGTH = 64
RECORDED_AT_FORMAT = "%Y%m%dT%H%M%SZ"


MAX_SUB_LENGTH = 256


def is_valid_sub(value: object) -> TypeGuard[str]:
    """True for a principal's `sub` of the contract's shape: 1 to 256 printable characters,
    not all spaces (a blank sub is no one a grant, flag or suspension could legibly name)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_SUB_LENGTH
        and value.isprintable()
        and bool(value.strip())
    )


def is_valid_id(value: str) -> bool:
    """True for a customer or camera id of the contract's shape."""
    return ID_PATTERN.fullmatch(value) is not None


def clip_recorded_at(clip_id: str) -> datetime | None:
    """The UTC recording time at the start of a clip id, or None if it is not a valid clip id."""
    if len(clip_id) > MAX_ID_LENGTH:
        return None
    match = CLIP_ID_PATTERN.fullmatch(clip_id)
    if match is None:
        return None
    # The fields straight into datetime, which checks them as strptime would: strptime is
    # slow, and every footage request parses its clip id more than once (docs/benchmarks.md).
    year, month, day, hour, minute, second = (int(match[name]) for name in "YmdHMS")
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # 20261399T… has the shape of a time but is none
        return None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified token."""

    sub: str
    roles: frozenset[str]
    customer_id: str | None = None
    expires_at: float = 0.0
    issued_at: float | None = None  # the token's iat, when it has one (break-glass needs it)

    @property
    def known_roles(self) -> frozenset[Role]:
        """The roles we know; an unknown role string grants nothing."""
        return frozenset(Role(r) for r in self.roles if r in Role._value2member_map_)


@dataclass(frozen=True, slots=True)
class CameraRef:
    customer_id: str
    camera_id: str

    @property
    def key(self) -> str:
        return f"{self.customer_id}/{self.camera_id}"


@dataclass(frozen=True, slots=True)
class ClipRef:
    """One stored clip, by validated ids; constructing one does not touch storage."""

    customer_id: str
    camera_id: str
    clip_id: str
    recorded_at: datetime

    @property
    def camera(self) -> CameraRef:
        return CameraRef(self.customer_id, self.camera_id)

    @property
    def key(self) -> str:
        return f"{self.customer_id}/{self.camera_id}/{self.clip_id}"

    def has_valid_ids(self) -> bool:
        """Every part is a valid id: no "/", no "..", nothing to escape. The pipeline checks
        this before a ClipRef is made; storage and delivery check again (defence in depth)."""
        return (
            is_valid_id(self.customer_id)
            and is_valid_id(self.camera_id)
            and clip_recorded_at(self.clip_id) is not None
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorization outcome that carries its reason; truthy only when allowed."""

    allowed: bool
    reason: str
    rule: str = ""
    grant_id: str | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def allow(cls, reason: str, rule: str = "", grant_id: str | None = None) -> Decision:
        return cls(True, reason, rule, grant_id)

    @classmethod
    def deny(cls, reason: str, rule: str = "") -> Decision:
        return cls(False, reason, rule)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """Everything authorization needs to know about one footage request."""

    principal: Principal
    action: Action
    camera: CameraRef
    zone: Zone
    purpose: Purpose | None
    justification: str | None
    recorded_at: datetime | None = None  # None for a listing
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_ts(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so stored times compare correctly as strings."""
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def now_ts() -> str:
    """format_ts(datetime.now(UTC)) to the character, more cheaply (docs/benchmarks.md).

    Every audit event and every log line is stamped: the date and time of day are formatted
    once a second, the microseconds each time.
    """
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_whole_second(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _whole_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def parse_ts(text: str) -> datetime:
    """An RFC 3339 time with a zone (`Z` or an offset) as an aware UTC datetime; ValueError else."""
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("a time needs a zone (Z or an offset)")
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before datetime.min in UTC
        raise ValueError("a time outside what can be represented") from exc


# Times a caller may send (grants, audit filters): a sane range, so that everything stored is
# stored as format_ts's fixed width and reads back (docs/contract.md §5, "Times from callers").
EARLIEST_INPUT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INPUT = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive: the whole of 2100 is allowed


def parse_input_ts(text: str) -> datetime:
    """parse_ts for a caller's time: also ValueError outside the years 2000 to 2100."""
    moment = parse_ts(text)
    if not EARLIEST_INPUT <= moment < LATEST_INPUT:
        raise ValueError("a time outside the years 2000 to 2100")
    return moment
