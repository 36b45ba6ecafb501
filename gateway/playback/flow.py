"""Playback's two requests, composed like the footage flow (gateway/pipeline.py):

- `start` (POST /v1/playback): authenticate → authorize exactly as a GET of the clip (same
  steps, same codes, the same audited denial) → a session row → the allowed access.decision,
  committed before the answer. That decision is the view: detection counts it, the customer's
  access log shows it.
- `play` (GET|HEAD /v1/play/{token}): no Authorization; the token names a session, liveness
  says whether it may still serve (no fsync waited on), the clip is served as the clip URL
  serves it (every Range form, If-Range, 304, redirect and accel modes), and the request is
  queued for the recorder. A refusal is an audited access.decision (action `play`) that never
  names the token; one of an unknown token is limited like an unauthenticated request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import structlog
from sqlalchemy.engine import Engine
from starlette.responses import Response

from gateway.background import spawn
from gateway.calls import FootageCall, resolve_clip
from gateway.delivery import (
    accel_path,
    accel_response,
    content_type_for,
    footage_response,
    not_modified_response,
    redirect_response,
)
from gateway.errors import GatewayError, NotFound, RateLimited
from gateway.grants import GrantStore
from gateway.outcomes import Outcome, denied_status, error_for, failed
from gateway.pipeline import PRESIGN_TTL_SECONDS, FootageFlow, served_part
from gateway.playback.ending import PLAYBACK_ACTION, Ender
from gateway.playback.held import HeldClips
from gateway.playback.liveness import Liveness
from gateway.playback.reaper import Reaper
from gateway.playback.recorder import PlayLog
from gateway.playback.store import (
    LIVE,
    VOID,
    PlayRecord,
    Session,
    SessionStore,
    Standing,
    session_row,
)
from gateway.playback.tokens import new_session_id, new_token, token_hash, well_formed
from gateway.ranges import ByteRange
from gateway.storage.base import OpenClip, still_stored
from gateway.types import ClipRef, Decision, Principal, format_ts
from gateway.zerocopy import file_of

log = structlog.get_logger("gateway.playback")

PLAY_ACTION = "play"  # the `action` of a refused play request's access.decision
# Every play response: the URL is a capability, so it must not leak through a Referer, and
# nothing in between keeps footage (contract §12).
PLAY_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "private, no-store"}
ENDED_MESSAGES = {
    "idle": "This playback ended: no request for too long.",
    "max_age": "This playback ended: it reached its maximum age.",
    "revoked": "This playback ended: the grant it played under was revoked.",
    "grant_expired": "This playback ended: the grant it played under expired.",
    "suspended": "This playback ended: its principal is suspended.",
    "ended": "This playback was ended.",
    "ended_by_customer": "This playback was ended by the customer.",
}


@dataclass(slots=True)
class PlaybackFlow:
    """POST /v1/playback and GET|HEAD /v1/play/{token}; see the module docstring."""

    flow: FootageFlow
    store: SessionStore
    grants: GrantStore
    liveness: Liveness
    playlog: PlayLog
    ender: Ender
    idle_seconds: int
    max_seconds: int
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests move it (expiry, idle)
    reaper: Reaper | None = None
    relaxed: Engine | None = None  # the engine of store.relaxed, when it is not the main one
    held: HeldClips | None = None  # each session's open clip file (file store, proxy mode)

    def run_reaper(self) -> None:
        """Start the sweep of sessions no request ends (on the running loop)."""
        if self.reaper is not None:
            self.reaper.start()

    async def close(self) -> None:
        """Stop the sweep and write the requests still queued (before the audit log closes)."""
        if self.reaper is not None:
            await self.reaper.close()
        await self.playlog.close()
        if self.held is not None:
            self.held.close()
        if self.relaxed is not None:
            self.relaxed.dispose()

    async def start(self, call: FootageCall) -> tuple[dict[str, Any], dict[str, str]]:
        """Start a session on the clip `call` names; the 201 body and its headers.

        The session row commits in the transaction of the allowed decision (a companion row,
        gateway/audit/companions.py): the session exists iff the log shows the view, and a start
        waits for one commit. A token is only given once both are durable.
        """
        call = replace(call, event_action=PLAYBACK_ACTION)
        principal = await self.flow.identify(call)  # a 401 is audited there
        outcome, clip, size = await self._decide(call, principal)
        if outcome.status != 201 or clip is None:
            event = await self.flow.recorder.decision(call, outcome)  # durable, or 503
            headers = {"X-Audit-Event-ID": event["event_id"], **PLAY_HEADERS}
            raise error_for(outcome, headers, call)  # a no_grant says how to ask (§13)
        token = new_token()
        session = self._session(call, principal, clip, size, outcome.decision, token)
        grant = spawn(self._grant_of(session))  # read while the decision commits
        try:
            event = await self.flow.recorder.decision(call, outcome, (session_row(session),))
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await grant
            raise
        headers = {"X-Audit-Event-ID": event["event_id"], **PLAY_HEADERS}
        try:
            granted = await grant
        except Exception as exc:  # the session idles out unused: its token was never given
            log.error("playback_not_started", error=repr(exc), session_id=session.session_id)
            message = "The playback session could not be started."
            raise GatewayError(message, headers=headers) from exc
        return self._started(session, token, granted), headers

    async def _grant_of(self, session: Session) -> dict[str, str] | None:
        if session.grant_id is None:
            return None
        found = await anyio.to_thread.run_sync(self.grants.get, session.grant_id)
        return {"grant_id": found.grant_id, "expires_at": format_ts(found.expires_at)}

    async def _decide(
        self, call: FootageCall, principal: Principal
    ) -> tuple[Outcome, ClipRef | None, int]:
        """As a GET of the clip decides (pipeline.view), without serving: 201 when allowed."""
        outcome = Outcome(principal, Decision.deny("bad_request"), status=400)
        try:
            clip = resolve_clip(call)
            outcome.decision, outcome.zone = await self.flow.authorize(call, principal, clip)
            if not outcome.decision:
                outcome.status = denied_status(outcome.decision)
                return outcome, None, 0
            self.flow.check_retention(clip)
            opened = await self.flow.storage.open(clip)  # a missing clip: 404, audited
            with anyio.CancelScope(shield=True):
                await opened.close()
            outcome.status = 201
            return outcome, clip, opened.info.size
        except GatewayError as exc:
            outcome.status, outcome.error = exc.status, exc
            if exc.status in (400, 410):
                outcome.decision = Decision.deny(exc.code, outcome.decision.rule)
            return outcome, None, 0
        except Exception as exc:  # deny by default: an error while deciding is a denial
            failed(outcome, exc)
            return outcome, None, 0

    def _session(
        self,
        call: FootageCall,
        principal: Principal,
        clip: ClipRef,
        size: int,
        decision: Decision,
        token: str,
    ) -> Session:
        now = self.clock()
        return Session(
            session_id=new_session_id(),
            token_hash=token_hash(token),
            request_id=call.request_id,
            principal=principal.sub,
            roles=tuple(sorted(principal.roles)),
            customer_id=clip.customer_id,
            camera_id=clip.camera_id,
            clip_id=clip.clip_id,
            purpose=call.purpose,
            justification=(call.justification or "").strip() or None,
            grant_id=decision.grant_id,
            clip_size=size,
            started_at=now,
            expires_at=now + timedelta(seconds=self.max_seconds),
        )

    def _started(
        self, session: Session, token: str, grant: dict[str, str] | None
    ) -> dict[str, Any]:
        return {
            "session_id": session.session_id,
            "url": f"/v1/play/{token}",
            "expires_at": format_ts(session.expires_at),
            "idle_timeout_seconds": self.idle_seconds,
            "grant": grant,
        }

    async def play(self, token: str, call: FootageCall) -> Response:
        """GET or HEAD through a playback URL (the module docstring says how)."""
        hashed = token_hash(token) if well_formed(token) else None
        standing = await self.liveness.standing(hashed) if hashed else None
        if standing is None or standing.session.state == VOID:
            raise await self._refuse(call, None, "playback_not_found")
        session = standing.session
        call = replace(
            call,
            customer_id=session.customer_id,
            camera_id=session.camera_id,
            clip_id=session.clip_id,
            purpose=session.purpose,
            justification=session.justification,
        )
        now = self.clock()
        reason = self.liveness.reason(standing, now)
        if reason is not None:
            if self.held is not None:
                self.held.drop(session.session_id)
            if session.state == LIVE:  # the transition decides who writes playback.ended
                await self.ender.end(session, reason, now)
            raise await self._refuse(call, session, reason)
        self.liveness.seen(session.session_id, now)
        return await self._serve(call, standing)

    async def _refuse(
        self, call: FootageCall, session: Session | None, reason: str
    ) -> GatewayError:
        """An audited refusal; the token is in neither the event nor the message."""
        if not self.flow.attempts.admit(call.client_ip):
            retry = str(self.flow.attempts.retry_after(call.client_ip))
            message = "Too many refused playback requests from this address."
            return RateLimited(message, headers={"Retry-After": retry, **PLAY_HEADERS})
        call = replace(call, event_action=PLAY_ACTION)
        if session is None:
            exc: GatewayError = NotFound("No such playback.", code="playback_not_found")
            outcome = Outcome(None, Decision.deny(exc.code), exc.status, error=exc)
        else:
            exc = GatewayError(ENDED_MESSAGES.get(reason, "This playback ended."))
            exc.status, exc.code = 403, "playback_ended"
            principal = Principal(session.principal, frozenset(session.roles))
            decision = Decision.deny(exc.code, f"playback: {reason}")
            outcome = Outcome(principal, decision, exc.status, error=exc)
        event = await self.flow.recorder.decision(call, outcome)
        exc.headers.update({"X-Audit-Event-ID": event["event_id"], **PLAY_HEADERS})
        return exc

    async def _serve(self, call: FootageCall, standing: Standing) -> Response:
        session = standing.session
        opened: OpenClip | None = None
        response: Response | None = None
        headers = {"X-Request-ID": call.request_id, **PLAY_HEADERS}
        try:
            if self.held is not None:  # proxy mode on the file store (gateway/playback/wiring.py)
                opened = await self.held.open(session.session_id, lambda: session.clip)
            else:
                opened = await self.flow.storage.open(session.clip)
            status, byte_range = served_part(call, opened.info)
            if status == 304:
                self._note(call, session, 304, None, 0)
                return not_modified_response(opened.info, headers)
            flow = self.flow
            if flow.presigner is not None and call.method == "GET":
                # The whole object, Range not signed: the player's own Range goes to S3.
                url = await flow.presigner.presign(
                    session.clip, None, None, ttl=PRESIGN_TTL_SECONDS
                )
                self._note(call, session, 307, byte_range or _whole(opened), None, "s3")
                return redirect_response(url, headers)
            if flow.accel_prefix is not None and call.method == "GET":
                path = accel_path(flow.accel_prefix, session.clip)
                self._note(call, session, status, byte_range or _whole(opened), None, "nginx")
                content_type = content_type_for(session.clip_id)
                return accel_response(path, opened.info, byte_range, content_type, headers)
            response = self._stream(call, standing, opened, status, byte_range, headers)
            return response
        except GatewayError as exc:
            self._note(call, session, exc.status, None, 0)
            exc.headers.update(headers)
            raise
        finally:
            if opened is not None and response is None:
                with anyio.CancelScope(shield=True):
                    await opened.close()

    def _stream(
        self,
        call: FootageCall,
        standing: Standing,
        opened: OpenClip,
        status: int,
        byte_range: ByteRange | None,
        headers: dict[str, str],
    ) -> Response:
        session = standing.session
        first = byte_range.start if byte_range else 0
        hashed = session.token_hash

        async def on_complete(bytes_sent: int, _completed: bool) -> None:
            self.flow.metrics.footage_sent(bytes_sent)  # as a clip URL's are counted
            span = ByteRange(first, first + bytes_sent - 1) if bytes_sent else None
            self._note(call, session, status, span, bytes_sent)

        async def still_live() -> bool:
            if not still_stored(opened):  # deleted mid-stream: the next request is a 404
                return False
            current = await self.liveness.standing(hashed)
            return current is not None and self.liveness.reason(current, self.clock()) is None

        return footage_response(
            method=call.method,
            info=opened.info,
            byte_range=byte_range,
            chunks=opened.read,
            release=opened.close,
            clip_id=session.clip_id,
            headers=headers,
            on_complete=on_complete,
            recheck=still_live,
            file=file_of(opened),
        )

    def _note(
        self,
        call: FootageCall,
        session: Session,
        status: int,
        span: ByteRange | None,
        bytes_sent: int | None,
        delivered_by: str | None = None,
    ) -> None:
        if call.method == "HEAD":
            span = None
        self.playlog.note(
            PlayRecord(
                session_id=session.session_id,
                ts=self.clock(),
                method=call.method,
                status=status,
                first_byte=span.start if span else None,
                last_byte=span.end if span else None,
                bytes_sent=bytes_sent,
                delivered_by=delivered_by,
            )
        )


def _whole(opened: OpenClip) -> ByteRange | None:
    size = opened.info.size
    return ByteRange(0, size - 1) if size else None
