"""The end of a playback session: the one `live` → `ended` transition, and its playback.ended.

The conditional UPDATE (`... WHERE state = 'live'`) and the event commit in one transaction
(gateway/audit/atomic.py), so a session ends once and is summed up once, whichever replica,
request or sweep gets there first; the others find it ended and write nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.playback.liveness import Liveness
from gateway.playback.recorder import PlayLog
from gateway.playback.store import Session, SessionStore
from gateway.types import EventType, format_ts

PLAYBACK_ACTION = "playback"  # the `action` of a session's events (contract §12)


@dataclass(frozen=True, slots=True)
class EndedBy:
    """Who ended a session by request (DELETE), for the event; None when it ran out."""

    principal: str
    request_id: str
    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class _Ended:
    session: Session
    first_request_at: datetime | None


@dataclass(frozen=True, slots=True)
class Ender:
    """Ends sessions: flushes their requests, then the transition and its event together."""

    audit: AuditLog
    store: SessionStore
    playlog: PlayLog
    liveness: Liveness

    async def end(
        self, session: Session, reason: str, now: datetime, by: EndedBy | None = None
    ) -> Event | None:
        """End `session` for `reason`; its playback.ended event, or None if it was not live."""
        await self.playlog.flush()  # this replica's requests through it count in the summary

        def change(conn: Connection) -> _Ended | None:
            ended = self.store.end(conn, session.session_id, reason, now)
            if ended is None:
                return None
            return _Ended(ended, self.store.first_request_at(session.session_id, conn))

        def event_of(result: _Ended | None) -> Event | None:
            return None if result is None else ended_event(result, by)

        try:
            _, sealed = await self.audit.commit_with(change, event_of)
        finally:
            self.liveness.forget(session.token_hash)
        return sealed


def ended_event(ended: _Ended, by: EndedBy | None) -> Event:
    """playback.ended: the session's summary (contract §7 and §12)."""
    s = ended.session
    return new_event(
        EventType.PLAYBACK_ENDED,
        request_id=s.request_id,  # the POST's: the view's decision and its summary join by it
        principal=s.principal,
        roles=list(s.roles),
        purpose=s.purpose,
        justification=s.justification,
        action=PLAYBACK_ACTION,
        customer_id=s.customer_id,
        camera_id=s.camera_id,
        clip_id=s.clip_id,
        reason=s.ended_reason,
        grant_id=s.grant_id,
        bytes_sent=s.bytes_sent,
        client_ip=by.client_ip if by else None,
        user_agent=by.user_agent if by else None,
        detail={
            "session_id": s.session_id,
            "requests": s.requests,
            "coverage": s.coverage,
            "clip_size": s.clip_size,
            "started_at": format_ts(s.started_at),
            "first_request_at": _ts(ended.first_request_at),
            "last_request_at": _ts(s.last_request_at),
            "ended_by": by.principal if by else None,
            "ended_request_id": by.request_id if by else None,
        },
    )


def _ts(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None
