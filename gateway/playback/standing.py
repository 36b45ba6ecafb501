"""Whether a playback session may still serve: the one function every path asks (STYLE §16).

A play request (through gateway/playback/liveness.py), a stream between its chunks and the
reaper's sweep all ask `end_reason`; None means live. The reasons are the `reason` of the
session's playback.ended event (contract §12).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.playback.store import LIVE, Standing

# Why a session ends (contract §12, playback.ended `reason`).
IDLE = "idle"
MAX_AGE = "max_age"
REVOKED = "revoked"  # the grant it plays under was revoked
GRANT_EXPIRED = "grant_expired"
SUSPENDED = "suspended"
ENDED = "ended"  # by the principal, DELETE /v1/playback/{id}
ENDED_BY_CUSTOMER = "ended_by_customer"
END_REASONS = (IDLE, MAX_AGE, REVOKED, GRANT_EXPIRED, SUSPENDED, ENDED, ENDED_BY_CUSTOMER)


def end_reason(
    standing: Standing, now: datetime, idle_seconds: int, last_seen: datetime | None = None
) -> str | None:
    """Why the session can no longer serve, or None while it is live.

    `last_seen`: this replica's latest request through it, which may not be written yet.
    """
    session = standing.session
    if session.state != LIVE:
        return session.ended_reason or ENDED
    if standing.suspended:
        return SUSPENDED
    if session.grant_id is not None:
        if standing.grant_revoked:
            return REVOKED
        if standing.grant_expires_at is None or now >= standing.grant_expires_at:
            return GRANT_EXPIRED  # or gone altogether: fail closed
    if now >= session.expires_at:
        return MAX_AGE
    last = max(t for t in (session.started_at, session.last_request_at, last_seen) if t is not None)
    if now - last > timedelta(seconds=idle_seconds):
        return IDLE
    return None
