"""Customer grants: create, list, revoke, and find the one that covers a staff request.

A grant is the customer's own word that a named person (or everyone in a role) may look at
some cameras, over a bounded stretch of footage, for one purpose and one ticket, until it
expires or is revoked. Grants are indexed rows (grantee, customer, expiry): one index probe
per decision, however many grants exist.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.db import audit_events, grants, reading, writing
from gateway.errors import BadRequest, NotFound
from gateway.types import (
    AccessRequest,
    Decision,
    EventType,
    GrantState,
    Principal,
    Purpose,
    Role,
    Zone,
    format_ts,
    is_valid_id,
    is_valid_sub,
    parse_input_ts,
    parse_ts,
)

ALL_CAMERAS = "*"
ROLE_PREFIX = "role:"
TICKET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:#/-]{1,99}", re.ASCII)
# A ticket counts only as a whole word of the justification: "T-1" must not match "T-12", nor
# "T-1.2", "T-1/2" or "OPS/T-1", which are other tickets (a ticket may hold . : # / -). A word
# is a run of ticket characters; punctuation at either end of it ("T-1." or "#T-1") is prose.
TICKET_WORD = re.compile(r"[A-Za-z0-9_.:#/-]+", re.ASCII)
TICKET_PUNCTUATION = ".:#/-"
MAX_CAMERAS = 100
CUSTOMER_APPROVAL = "customer"  # grants.approval: made or approved by the owning customer


@functools.cache
def candidates_statement(grantees: int) -> sa.Select[Any]:
    """The grant check's one index probe, for this many grantee names (:g0, :g1, …).

    Built once per count (a principal has its sub and a few roles): on every request, building
    and keying the statement cost more than running it (docs/benchmarks.md). Plain parameters
    rather than an expanding IN, so the same statement also compiles once to SQLite text
    (gateway/facts.py).
    """
    return (
        grants.select()
        .where(
            grants.c.grantee.in_([sa.bindparam(f"g{i}") for i in range(grantees)]),
            grants.c.customer_id == sa.bindparam("customer_id"),
            grants.c.expires_at > sa.bindparam("now"),
            grants.c.revoked_at.is_(None),
        )
        .order_by(grants.c.created_at.desc())
    )


def candidates_params(grantees: Sequence[str], customer_id: str, now: datetime) -> dict[str, str]:
    """The parameters of candidates_statement(len(grantees))."""
    params = {f"g{i}": grantee for i, grantee in enumerate(grantees)}
    return params | {"customer_id": customer_id, "now": format_ts(now)}


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: str
    customer_id: str
    grantee: str
    purpose: str
    cameras: tuple[str, ...]
    footage_from: datetime
    footage_until: datetime
    expires_at: datetime
    ticket: str
    include_private: bool
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    request_id: str | None = None  # the access request it answers (contract §13)
    approval: str = CUSTOMER_APPROVAL  # who approved it: the customer, or staff approvers

    def state(self, now: datetime) -> GrantState:
        """`revoked`, `expired` or `active`, as the contract names them."""
        if self.revoked_at is not None:
            return GrantState.REVOKED
        return GrantState.ACTIVE if now < self.expires_at else GrantState.EXPIRED

    def covers_camera(self, camera_id: str) -> bool:
        return ALL_CAMERAS in self.cameras or camera_id in self.cameras

    def covers_time(self, recorded_at: datetime) -> bool:
        return self.footage_from <= recorded_at <= self.footage_until

    def ticket_in(self, justification: str) -> bool:
        words = TICKET_WORD.findall(justification)
        return any(self.ticket in (w, w.strip(TICKET_PUNCTUATION)) for w in words)

    def as_json(self, now: datetime, use_count: int = 0) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "customer_id": self.customer_id,
            "grantee": self.grantee,
            "purpose": self.purpose,
            "cameras": list(self.cameras),
            "footage_from": format_ts(self.footage_from),
            "footage_until": format_ts(self.footage_until),
            "expires_at": format_ts(self.expires_at),
            "ticket": self.ticket,
            "include_private": self.include_private,
            "created_at": format_ts(self.created_at),
            "created_by": self.created_by,
            "revoked_at": format_ts(self.revoked_at) if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "state": self.state(now),
            "use_count": use_count,
            "request_id": self.request_id,
            "approval": self.approval,
        }


def parse_new_grant(body: Any, owner: Principal, now: datetime, max_ttl_seconds: int) -> Grant:
    """Validate a POST /v1/grants body; BadRequest names the first bad field."""
    if not isinstance(body, Mapping):
        raise BadRequest("The body must be a JSON object.")
    if owner.customer_id is None:
        raise BadRequest("Only a customer can grant access to their footage.")
    allowed = {
        "grantee",
        "purpose",
        "cameras",
        "footage_from",
        "footage_until",
        "expires_at",
        "ticket",
        "include_private",
    }
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    footage_from = field_time(body, "footage_from")
    footage_until = field_time(body, "footage_until")
    if footage_from >= footage_until:
        raise BadRequest("footage_from must be before footage_until.")
    expires_at = field_time(body, "expires_at")
    if expires_at <= now:
        raise BadRequest("expires_at must be in the future.")
    if expires_at > now + timedelta(seconds=max_ttl_seconds):
        raise BadRequest(f"expires_at must be at most {max_ttl_seconds} seconds away.")
    return Grant(
        grant_id="gr_" + secrets.token_urlsafe(12),
        customer_id=owner.customer_id,
        grantee=_grantee(body.get("grantee")),
        purpose=field_purpose(body.get("purpose")),
        cameras=field_cameras(body.get("cameras")),
        footage_from=footage_from,
        footage_until=footage_until,
        expires_at=expires_at,
        ticket=field_ticket(body.get("ticket")),
        include_private=field_flag(body.get("include_private", False)),
        created_at=now,
        created_by=owner.sub,
    )


def field_time(body: Mapping[str, Any], field: str) -> datetime:
    value = body.get(field)
    message = f"{field} must be an RFC 3339 time with a zone, in the years 2000 to 2100."
    if not isinstance(value, str):
        raise BadRequest(message)
    try:
        return parse_input_ts(value)
    except ValueError as exc:
        raise BadRequest(message) from exc


def _grantee(value: Any) -> str:
    if isinstance(value, str) and value.startswith("role:"):
        role = value.removeprefix("role:")
        if role not in Role._value2member_map_ or role == Role.CUSTOMER:
            raise BadRequest("grantee names an unknown staff role.")
        return value
    if not is_valid_sub(value):
        raise BadRequest("grantee must be a principal (sub) or role:<role>.")
    return value


def field_purpose(value: Any) -> str:
    # isinstance first: a JSON list or object is unhashable, and `in` would raise TypeError.
    if not isinstance(value, str) or value not in Purpose._value2member_map_:
        raise BadRequest("purpose must be one of " + ", ".join(Purpose) + ".")
    return str(value)


def field_cameras(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_CAMERAS:
        raise BadRequest(f'cameras must be a list of 1 to {MAX_CAMERAS} camera ids, or ["*"].')
    if value == [ALL_CAMERAS]:
        return (ALL_CAMERAS,)
    if not all(isinstance(c, str) and is_valid_id(c) for c in value):
        raise BadRequest("cameras must hold camera ids.")
    return tuple(sorted(set(value)))


def field_ticket(value: Any) -> str:
    if not isinstance(value, str) or TICKET_PATTERN.fullmatch(value) is None:
        raise BadRequest("ticket must be 2 to 100 characters: letters, digits and _.:#/-.")
    return value


def field_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest("include_private must be true or false.")
    return value


class GrantStore:
    """Grants in the database; the sync methods run in worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, grant: Grant, conn: Connection | None = None) -> None:
        """Store a new grant (in `conn`'s transaction when given: with its audit event)."""
        with writing(self.engine, conn) as c:
            c.execute(grants.insert().values(**_row(grant)))

    def get(self, grant_id: str, conn: Connection | None = None) -> Grant:
        with reading(self.engine, conn) as c:
            row = c.execute(grants.select().where(grants.c.grant_id == grant_id)).first()
        if row is None:
            raise NotFound("No such grant.")
        return grant_from_row(row._mapping)

    def revoke(
        self, grant_id: str, by: str, now: datetime, conn: Connection | None = None
    ) -> Grant:
        """Mark revoked (idempotent: a second revoke keeps the first time and author)."""
        with writing(self.engine, conn) as c:
            c.execute(
                grants.update()
                .where(grants.c.grant_id == grant_id, grants.c.revoked_at.is_(None))
                .values(revoked_at=format_ts(now), revoked_by=by)
            )
            return self.get(grant_id, c)

    def for_customer(self, customer_id: str) -> list[Grant]:
        return self._select(grants.c.customer_id == customer_id)

    def for_grantees(self, grantees: Sequence[str]) -> list[Grant]:
        return self._select(grants.c.grantee.in_(grantees))

    def candidates(
        self,
        grantees: Sequence[str],
        customer_id: str,
        now: datetime,
        conn: Connection | None = None,
    ) -> list[Grant]:
        """Unrevoked, unexpired grants to any of these grantees on one customer's footage."""
        params = candidates_params(grantees, customer_id, now)
        statement = candidates_statement(len(grantees))
        with reading(self.engine, conn) as c:
            return [grant_from_row(row._mapping) for row in c.execute(statement, params)]

    def _select(self, *conditions: sa.ColumnElement[bool]) -> list[Grant]:
        stmt = grants.select().where(*conditions).order_by(grants.c.created_at.desc())
        with self.engine.connect() as conn:
            return [grant_from_row(row._mapping) for row in conn.execute(stmt)]

    def use_counts(self, grant_ids: Sequence[str]) -> dict[str, int]:
        """How many allowed views each grant let through, counted from the audit log itself."""
        if not grant_ids:
            return {}
        c = audit_events.c
        stmt = (
            sa.select(c.grant_id, sa.func.count())
            .where(c.grant_id.in_(grant_ids), c.type == str(EventType.ACCESS_DECISION))
            .group_by(c.grant_id)
        )
        with self.engine.connect() as conn:
            return {str(gid): int(n) for gid, n in conn.execute(stmt)}


def _row(grant: Grant) -> dict[str, Any]:
    return {
        "grant_id": grant.grant_id,
        "customer_id": grant.customer_id,
        "grantee": grant.grantee,
        "purpose": grant.purpose,
        "cameras": json.dumps(list(grant.cameras)),
        "footage_from": format_ts(grant.footage_from),
        "footage_until": format_ts(grant.footage_until),
        "expires_at": format_ts(grant.expires_at),
        "ticket": grant.ticket,
        "include_private": grant.include_private,
        "created_at": format_ts(grant.created_at),
        "created_by": grant.created_by,
        "request_id": grant.request_id,
        "approval": grant.approval,
    }


def grant_from_row(row: Any) -> Grant:
    """A grants row (any mapping by column name) as a Grant."""
    return Grant(
        grant_id=row["grant_id"],
        customer_id=row["customer_id"],
        grantee=row["grantee"],
        purpose=row["purpose"],
        cameras=tuple(json.loads(row["cameras"])),
        footage_from=parse_ts(row["footage_from"]),
        footage_until=parse_ts(row["footage_until"]),
        expires_at=parse_ts(row["expires_at"]),
        ticket=row["ticket"],
        include_private=bool(row["include_private"]),
        created_at=parse_ts(row["created_at"]),
        created_by=row["created_by"],
        revoked_at=parse_ts(row["revoked_at"]) if row["revoked_at"] else None,
        revoked_by=row["revoked_by"],
        request_id=row["request_id"],
        approval=row["approval"],
    )


def grantee_names(sub: str, roles: Iterable[str]) -> list[str]:
    """The grantee values that name a principal: its sub, and role:<role> for each role given.

    Subs and role grantees are two namespaces that must never meet: a sub that itself reads
    "role:support_lead" is not matched as a sub, or an agent whose identity-provider subject is
    spelled that way would be covered by every grant to support leads.
    """
    names = [] if sub.startswith(ROLE_PREFIX) else [sub]
    return names + [f"{ROLE_PREFIX}{role}" for role in roles]


def covering_grant(candidates: Sequence[Grant], request: AccessRequest, role: Role) -> Decision:
    """The grant check (authz.GrantCheck): does a candidate to this principal or this role cover
    the request? The candidates are the request's own, read with its other facts (facts.py)."""
    names = set(grantee_names(request.principal.sub, [role]))
    return match_grant([g for g in candidates if g.grantee in names], request)


def match_grant(candidates: Sequence[Grant], request: AccessRequest) -> Decision:
    """The first candidate that covers every condition; else the closest miss's reason."""
    private_miss = False
    for grant in candidates:
        if not _covers(grant, request):
            continue
        if request.zone == Zone.PRIVATE and not grant.include_private:
            private_miss = True
            continue
        return Decision.allow("grant", grant_id=grant.grant_id)
    return Decision.deny("zone_restricted" if private_miss else "no_grant")


def _covers(grant: Grant, request: AccessRequest) -> bool:
    """Every condition but the zone: active now, purpose, camera, time, ticket."""
    return (
        grant.state(request.now) is GrantState.ACTIVE
        and grant.purpose == request.purpose
        and grant.customer_id == request.camera.customer_id
        and grant.covers_camera(request.camera.camera_id)
        and (request.recorded_at is None or grant.covers_time(request.recorded_at))
        and request.justification is not None
        and grant.ticket_in(request.justification)
    )
