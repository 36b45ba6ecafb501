"""Playback sessions and their requests in the database (gateway/db.py has the tables).

A new session's row commits in its start's access.decision transaction (`session_row`, a
companion of the audit batch). Writes that nobody waits on for durability (the batches of
requests) go through the relaxed engine (db.create_relaxed_engine); the one transition that is
audited, `live` → `ended`, runs inside the audit event's own transaction
(gateway/playback/ending.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.audit.companions import Companion
from gateway.db import grants, playback_requests, playback_sessions, principals, reading
from gateway.errors import NotFound
from gateway.types import ClipRef, PrincipalState, clip_recorded_at, format_ts, parse_ts

# `void`: a session whose decision could not be committed, as earlier gateways marked it; a
# start now writes its row in its decision's transaction, so no new one is made, but a database
# may still hold some (never served: flow.py).
LIVE, ENDED, VOID = "live", "ended", "void"
PURGE_BATCH = 10_000  # request records deleted per sweep at most: a sweep never holds the lock long


@dataclass(frozen=True, slots=True)
class Session:
    """One playback session as stored."""

    session_id: str
    token_hash: str
    request_id: str
    principal: str
    roles: tuple[str, ...]
    customer_id: str
    camera_id: str
    clip_id: str
    purpose: str | None
    justification: str | None
    grant_id: str | None
    clip_size: int
    started_at: datetime
    expires_at: datetime
    last_request_at: datetime | None = None
    requests: int = 0
    bytes_sent: int = 0
    state: str = LIVE
    ended_at: datetime | None = None
    ended_reason: str | None = None
    coverage: float | None = None

    @property
    def clip(self) -> ClipRef:
        recorded_at = clip_recorded_at(self.clip_id)
        assert recorded_at is not None  # only a resolved clip ever gets a session
        return ClipRef(self.customer_id, self.camera_id, self.clip_id, recorded_at)

    def as_json(self) -> dict[str, Any]:
        """A session as GET /v1/playback lists it (contract §12)."""
        return {
            "session_id": self.session_id,
            "principal": self.principal,
            "customer_id": self.customer_id,
            "camera_id": self.camera_id,
            "clip_id": self.clip_id,
            "purpose": self.purpose,
            "justification": self.justification,
            "grant_id": self.grant_id,
            "started_at": format_ts(self.started_at),
            "expires_at": format_ts(self.expires_at),
            "last_request_at": _ts(self.last_request_at),
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class Standing:
    """A session with what decides whether it may still serve, read in one statement."""

    session: Session
    grant_revoked: bool
    grant_expires_at: datetime | None
    suspended: bool


@dataclass(frozen=True, slots=True)
class PlayRecord:
    """One request through a session: the byte span it sent (inclusive), if any."""

    session_id: str
    ts: datetime
    method: str
    status: int
    first_byte: int | None
    last_byte: int | None
    bytes_sent: int | None
    delivered_by: str | None = None


_STANDING = sa.select(
    playback_sessions,
    grants.c.revoked_at.label("grant_revoked_at"),
    grants.c.expires_at.label("grant_expires_at"),
    principals.c.status.label("principal_status"),
).select_from(
    playback_sessions.outerjoin(
        grants, grants.c.grant_id == playback_sessions.c.grant_id
    ).outerjoin(principals, principals.c.sub == playback_sessions.c.principal)
)


class SessionStore:
    """Sessions: `engine` for reads, `relaxed` for the writes no one waits on an fsync for."""

    def __init__(self, engine: Engine, relaxed: Engine) -> None:
        self.engine = engine
        self.relaxed = relaxed

    def create(self, session: Session) -> None:
        with self.relaxed.begin() as conn:
            conn.execute(playback_sessions.insert().values(**_row(session)))

    def standing(self, token_hash: str) -> Standing | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                _STANDING.where(playback_sessions.c.token_hash == token_hash)
            ).first()
        return _standing(row) if row is not None else None

    def live_standings(self) -> list[Standing]:
        """Every live session and its standing (the reaper's sweep; an indexed read)."""
        with self.engine.connect() as conn:
            rows = conn.execute(_STANDING.where(playback_sessions.c.state == LIVE)).all()
        return [_standing(row) for row in rows]

    def get(self, session_id: str, conn: Connection | None = None) -> Session:
        query = playback_sessions.select().where(playback_sessions.c.session_id == session_id)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.engine.connect() as fresh:
                row = fresh.execute(query).first()
        if row is None:
            raise NotFound("No such playback session.", code="playback_not_found")
        return session_from_row(row)

    def live_for(
        self, *, principal: str | None = None, customer_id: str | None = None
    ) -> list[Session]:
        """The live sessions of a principal, or on a customer's footage, oldest first."""
        query = playback_sessions.select().where(playback_sessions.c.state == LIVE)
        if principal is not None:
            query = query.where(playback_sessions.c.principal == principal)
        if customer_id is not None:
            query = query.where(playback_sessions.c.customer_id == customer_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(playback_sessions.c.started_at)).all()
        return [session_from_row(row) for row in rows]

    def by_request_ids(self, request_ids: Sequence[str]) -> dict[str, Session]:
        """The sessions the POSTs with these request ids started (the customer's access log)."""
        if not request_ids:
            return {}
        query = playback_sessions.select().where(
            playback_sessions.c.request_id.in_(list(request_ids))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {row.request_id: session_from_row(row) for row in rows}

    def record(self, records: Sequence[PlayRecord]) -> None:
        """Write a batch of requests, adding them to their sessions' figures, in one commit:
        under load, many sessions' requests share it."""
        if not records:
            return
        with self.relaxed.begin() as conn:
            conn.execute(playback_requests.insert(), [_request_row(r) for r in records])
            for session_id, (count, sent, last) in _totals(records).items():
                conn.execute(_ADD_TOTALS, {"sid": session_id, "n": count, "b": sent, "ts": last})

    def end(self, conn: Connection, session_id: str, reason: str, now: datetime) -> Session | None:
        """`live` → `ended` in `conn`'s transaction; None if it was not live (someone else
        ended it first: with several replicas exactly one UPDATE matches)."""
        ended = conn.execute(
            playback_sessions.update()
            .where(playback_sessions.c.session_id == session_id)
            .where(playback_sessions.c.state == LIVE)
            .values(state=ENDED, ended_at=format_ts(now), ended_reason=reason)
        )
        if ended.rowcount != 1:
            return None
        session = self.get(session_id, conn)
        fraction = coverage(session.clip_size, self.spans(session_id, conn))
        conn.execute(
            playback_sessions.update()
            .where(playback_sessions.c.session_id == session_id)
            .values(coverage=fraction)
        )
        return self.get(session_id, conn)

    def spans(self, session_id: str, conn: Connection | None = None) -> list[tuple[int, int]]:
        """The byte spans the session's requests sent (first, last), inclusive."""
        query = sa.select(playback_requests.c.first_byte, playback_requests.c.last_byte).where(
            playback_requests.c.session_id == session_id,
            playback_requests.c.first_byte.is_not(None),
        )
        if conn is not None:
            return [(int(a), int(b)) for a, b in conn.execute(query).all()]
        with self.engine.connect() as fresh:
            return [(int(a), int(b)) for a, b in fresh.execute(query).all()]

    def purge_requests(self, ended_before: datetime, limit: int = PURGE_BATCH) -> int:
        """Delete the request records of sessions that ended before `ended_before`, at most
        `limit` of them; how many went. Their session row and its playback.ended event keep
        the sums (requests, bytes, coverage, first and last request) for good."""
        done = (
            sa.select(playback_sessions.c.session_id)
            .where(playback_sessions.c.state == ENDED)
            .where(playback_sessions.c.ended_at < format_ts(ended_before))
        )
        doomed = (
            sa.select(playback_requests.c.id)
            .where(playback_requests.c.session_id.in_(done))
            .limit(limit)
            .scalar_subquery()
        )
        with self.relaxed.begin() as conn:
            gone = conn.execute(
                playback_requests.delete().where(playback_requests.c.id.in_(doomed))
            )
        return int(gone.rowcount or 0)

    def first_request_at(self, session_id: str, conn: Connection | None = None) -> datetime | None:
        """When the session's first recorded request was made (None: no request yet)."""
        query = sa.select(sa.func.min(playback_requests.c.ts)).where(
            playback_requests.c.session_id == session_id
        )
        with reading(self.engine, conn) as held:
            first = held.execute(query).scalar()
        return parse_ts(first) if first else None


_ADD_TOTALS = sa.text(
    "UPDATE playback_sessions SET requests = requests + :n, bytes_sent = bytes_sent + :b, "
    "last_request_at = CASE WHEN last_request_at IS NULL OR last_request_at < :ts "
    "THEN :ts ELSE last_request_at END WHERE session_id = :sid"
)


def coverage(size: int, spans: Iterable[tuple[int, int]]) -> float:
    """The fraction of a clip's `size` bytes that the union of `spans` covers (0 to 1)."""
    if size <= 0:
        return 0.0
    covered, reach = 0, -1  # reach: the last byte counted so far
    for first, last in sorted((max(0, a), min(size - 1, b)) for a, b in spans):
        if last < first or last <= reach:
            continue
        covered += last - max(first, reach + 1) + 1
        reach = last
    return round(covered / size, 6)


def _totals(records: Sequence[PlayRecord]) -> dict[str, tuple[int, int, str]]:
    totals: dict[str, tuple[int, int, str]] = {}
    for r in records:
        count, sent, last = totals.get(r.session_id, (0, 0, ""))
        ts = format_ts(r.ts)
        totals[r.session_id] = (count + 1, sent + (r.bytes_sent or 0), max(last, ts))
    return totals


def _request_row(r: PlayRecord) -> dict[str, Any]:
    return {
        "session_id": r.session_id,
        "ts": format_ts(r.ts),
        "method": r.method,
        "status": r.status,
        "first_byte": r.first_byte,
        "last_byte": r.last_byte,
        "bytes_sent": r.bytes_sent,
        "delivered_by": r.delivered_by,
    }


def session_row(session: Session) -> Companion:
    """The new session's row, to commit in its start's access.decision transaction."""
    return Companion(playback_sessions.name, _row(session))


def _row(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "token_hash": s.token_hash,
        "request_id": s.request_id,
        "principal": s.principal,
        "roles": json.dumps(list(s.roles)),
        "customer_id": s.customer_id,
        "camera_id": s.camera_id,
        "clip_id": s.clip_id,
        "purpose": s.purpose,
        "justification": s.justification,
        "grant_id": s.grant_id,
        "clip_size": s.clip_size,
        "started_at": format_ts(s.started_at),
        "expires_at": format_ts(s.expires_at),
        "state": s.state,
        "requests": 0,
        "bytes_sent": 0,
    }


def session_from_row(row: Any) -> Session:
    return Session(
        session_id=row.session_id,
        token_hash=row.token_hash,
        request_id=row.request_id,
        principal=row.principal,
        roles=tuple(json.loads(row.roles)),
        customer_id=row.customer_id,
        camera_id=row.camera_id,
        clip_id=row.clip_id,
        purpose=row.purpose,
        justification=row.justification,
        grant_id=row.grant_id,
        clip_size=int(row.clip_size),
        started_at=parse_ts(row.started_at),
        expires_at=parse_ts(row.expires_at),
        last_request_at=parse_ts(row.last_request_at) if row.last_request_at else None,
        requests=int(row.requests),
        bytes_sent=int(row.bytes_sent),
        state=row.state,
        ended_at=parse_ts(row.ended_at) if row.ended_at else None,
        ended_reason=row.ended_reason,
        coverage=row.coverage,
    )


def _standing(row: Any) -> Standing:
    expires = row.grant_expires_at
    return Standing(
        session=session_from_row(row),
        grant_revoked=row.grant_revoked_at is not None,
        grant_expires_at=parse_ts(expires) if expires else None,
        suspended=row.principal_status == PrincipalState.SUSPENDED,
    )


def _ts(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
