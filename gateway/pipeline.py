"""The footage request flow, in one direction: resolve → authenticate → authorize → audit → deliver.

This is the one composition point (STYLE: the steps never import each other). Every request
that gets past authentication leaves exactly one `access.decision` event, committed before a
byte of footage leaves; if it cannot be committed, the answer is 503 and no footage.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import structlog
from starlette.responses import Response

from gateway.authn import Authenticator
from gateway.authz import Authorizer
from gateway.calls import (
    FootageCall,
    resolve_camera,
    resolve_clip,
    staff_headers,
)
from gateway.cameras import CameraStore
from gateway.conditionals import Condition, evaluate, range_applies
from gateway.delivery import (
    accel_path,
    accel_response,
    content_type_for,
    footage_response,
    not_modified_response,
    redirect_response,
)
from gateway.errors import (
    AuditUnavailable,
    Forbidden,
    GatewayError,
    RateLimited,
    RetentionExpired,
    Unauthenticated,
)
from gateway.facts import FactsReader
from gateway.grants import GrantStore
from gateway.metrics import Metrics
from gateway.outcomes import Outcome, Recorder, denied_status, error_for, failed
from gateway.ranges import ByteRange, parse_range
from gateway.ratelimit import AttemptLimiter
from gateway.storage.base import ObjectInfo, OpenClip, Presigner, Storage, still_stored
from gateway.streamguard import RECHECK_SECONDS, StreamGuard, Ticker
from gateway.types import (
    AccessRequest,
    CameraRef,
    ClipRef,
    Decision,
    GrantState,
    Principal,
    Zone,
    clip_recorded_at,
)
from gateway.zerocopy import file_of

log = structlog.get_logger("gateway.pipeline")

# Detection's admission (contract §8): (request, allowed decision, method, clip id) → the
# decision, or a refusal when the principal is at a suspend threshold. Checked and counted in
# one step inside the decision, so concurrent requests cannot all slip under a threshold.
Admit = Callable[[AccessRequest, Decision, str, str | None], Awaitable[Decision]]
PRESIGN_TTL_SECONDS = 60


@dataclass(slots=True)
class FootageFlow:
    """Runs footage and listing requests through every step, with the services they need."""

    authn: Authenticator
    cameras: CameraStore
    authorizer: Authorizer
    grants: GrantStore
    storage: Storage
    facts: FactsReader
    retention_days: int | None
    metrics: Metrics
    recorder: Recorder  # the access.decision and access.complete events, and what they tell
    attempts: AttemptLimiter  # unauthenticated footage requests per client address
    presigner: Presigner | None = None  # FOOTGW_DELIVERY=redirect: S3 presigned URLs
    accel_prefix: str | None = None  # FOOTGW_DELIVERY=accel: nginx's internal location
    admit: Admit | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # "now" for decisions and grants
    ticker: Ticker = time.monotonic  # paces the re-checks of open streams
    recheck_seconds: float = RECHECK_SECONDS

    async def authenticate(self, authorization: str | None) -> Principal:
        """A verified, not suspended principal (suspension is 403 on everything).

        For the routes other than footage; a footage request asks the same question of the same
        FactsReader along with its other facts, and is refused as an audited decision.
        """
        principal = await self.authn.authenticate(authorization)
        if (await self.facts.status(principal.sub)).suspended:
            raise Forbidden("This principal is suspended.", code="principal_suspended")
        return principal

    async def identify(self, call: FootageCall) -> Principal:
        """The caller of a footage request; a failure is itself an audited denial.

        Contract §5 and §7: every footage or listing request, allowed or denied, writes one
        access.decision event and carries its id, so a 401 is recorded (with no principal).
        """
        try:
            return await self.authn.authenticate(call.authorization)
        except Unauthenticated as exc:
            self._limit_unauthenticated(call)
            denied = Outcome(None, Decision.deny("unauthenticated"), status=401)
            event = await self.recorder.decision(call, denied)
            exc.headers["X-Audit-Event-ID"] = event["event_id"]
            raise

    def _limit_unauthenticated(self, call: FootageCall) -> None:
        """Spend one of the address's unauthenticated attempts, or refuse 429 (contract §5).

        Every footage request without a valid token draws from it, whatever its method or path,
        before it is audited: counted, not audited one by one, so the audit log and the
        customer's access log are not the flood's sink (docs/security.md). The address's
        earlier attempts are in the log already.
        """
        if not self.attempts.admit(call.client_ip):
            self.metrics.unauthenticated_limited.inc()
            retry = str(self.attempts.retry_after(call.client_ip))
            message = "Too many unauthenticated requests from this address."
            raise RateLimited(message, headers={"Retry-After": retry})

    async def refuse(
        self, call: FootageCall, exc: GatewayError, decision: Decision | None = None
    ) -> GatewayError:
        """Audit a footage request that ends in `exc` outside view and list_clips (a refused
        or failed DELETE, a method the path does not allow): one access.decision, named on
        the response, so every footage response is audited (contract §7)."""
        if "X-Audit-Event-ID" in exc.headers or isinstance(exc, AuditUnavailable):
            return exc  # already audited, or nothing can be
        try:
            principal: Principal | None = await self.authn.authenticate(call.authorization)
        except Unauthenticated:
            principal = None
        if principal is None:
            try:
                self._limit_unauthenticated(call)  # a DELETE is a footage request too
            except RateLimited as limited:
                return limited
        outcome = Outcome(principal, decision or Decision.deny(exc.code), exc.status, error=exc)
        outcome.zone = await self._zone_if_named(call)
        event = await self.recorder.decision(call, outcome)
        exc.headers["X-Audit-Event-ID"] = event["event_id"]
        return exc

    async def _zone_if_named(self, call: FootageCall) -> Zone:
        """The zone of the camera a call names, for its event; `private` if it names none."""
        try:
            camera = resolve_camera(call)
            return await anyio.to_thread.run_sync(self.cameras.zone_of, camera)
        except Exception:  # the refusal stands either way; private is what unknown counts as
            return Zone.PRIVATE

    async def view(self, call: FootageCall) -> Response:
        """GET or HEAD one clip."""
        principal = await self.identify(call)
        outcome, clip, opened = await self._decide_view(call, principal)
        response: Response | None = None
        try:
            event = await self.recorder.decision(
                call, outcome
            )  # AuditUnavailable → 503, nothing served
            headers = {"X-Audit-Event-ID": event["event_id"], "X-Request-ID": call.request_id}
            if outcome.status >= 400:
                raise error_for(outcome, headers, call)
            assert clip is not None and opened is not None
            if outcome.status == 304:  # the client holds this very clip: no body, no stream
                return not_modified_response(opened.info, headers)
            if self.presigner is not None and call.method == "GET":
                url = await self.presigner.presign(
                    clip, *_range_bounds(outcome.byte_range), ttl=PRESIGN_TTL_SECONDS
                )
                await self.recorder.complete(call, outcome, clip, None, True, delivered_by="s3")
                return redirect_response(url, headers)
            if self.accel_prefix is not None and call.method == "GET":
                # The finally below closes the clip: nginx opens the file itself.
                return await self._accel(call, outcome, clip, opened, headers)

            guard = self._guard(call, principal, clip, outcome.decision, opened)

            async def on_complete(bytes_sent: int, completed: bool) -> None:
                ended = guard.ending()
                await self.recorder.complete(
                    call, outcome, clip, bytes_sent, completed, ended=ended
                )

            response = footage_response(
                method=call.method,
                info=opened.info,
                byte_range=outcome.byte_range,
                chunks=opened.read,  # the very object whose size and ETag head the response
                release=opened.close,  # from here on the response owns the clip and closes it
                content_type=None,
                clip_id=clip.clip_id,
                headers=headers,
                on_complete=on_complete,
                recheck=guard.still_allowed,
                file=file_of(opened),
            )
            return response
        finally:
            # Every way out that hands no response the clip (an audit failure, a redirect, an
            # error, cancellation) closes it here; shielded, so a cancellation cannot skip it.
            if opened is not None and response is None:
                with anyio.CancelScope(shield=True):
                    await opened.close()

    def _guard(
        self,
        call: FootageCall,
        principal: Principal,
        clip: ClipRef,
        opened_by: Decision,
        opened: OpenClip,
    ) -> StreamGuard:
        """The stream's permission, re-asked between chunks (gateway/streamguard.py), and the
        clip's own standing: deleted since it was opened, or past its retention, ends it too."""

        async def decide() -> Decision:
            if not still_stored(opened):
                return Decision.deny(CLIP_DELETED)
            if self._expired(clip.recorded_at):
                return Decision.deny(RETENTION_EXPIRED)
            # Not admitted again: a stream re-checked is the same look, not another one.
            decision, _zone = await self.authorize(call, principal, clip, admit=False)
            return decision

        async def explain(decision: Decision) -> str:
            if decision.reason in _CLIP_ENDINGS:
                return _CLIP_ENDINGS[decision.reason]
            if decision.reason == "principal_suspended":
                return "suspended"
            if opened_by.grant_id is None:
                return "denied"  # an owner's or a grant-free role's standing changed
            grant = await anyio.to_thread.run_sync(self.grants.get, opened_by.grant_id)
            state = grant.state(self.clock())
            return "denied" if state == GrantState.ACTIVE else str(state)  # revoked, expired

        return StreamGuard(decide, explain, self.ticker, self.recheck_seconds)

    async def _accel(
        self,
        call: FootageCall,
        outcome: Outcome,
        clip: ClipRef,
        opened: OpenClip,
        headers: dict[str, str],
    ) -> Response:
        """Hand an allowed, already audited GET to nginx (FOOTGW_DELIVERY=accel).

        As with a presigned redirect, the gateway never learns how many bytes nginx sent: the
        access.complete event says bytes_sent=null (not known) and `delivered_by: nginx` right
        away.
        """
        assert self.accel_prefix is not None
        path = accel_path(self.accel_prefix, clip)  # raises before any complete event if bad
        await self.recorder.complete(call, outcome, clip, None, True, delivered_by="nginx")
        content_type = content_type_for(clip.clip_id)
        return accel_response(path, opened.info, outcome.byte_range, content_type, headers)

    async def _decide_view(
        self, call: FootageCall, principal: Principal
    ) -> tuple[Outcome, ClipRef | None, OpenClip | None]:
        outcome = Outcome(principal, Decision.deny("bad_request"), status=400)
        try:
            clip = resolve_clip(call)
            outcome.decision, outcome.zone = await self.authorize(call, principal, clip)
            if not outcome.decision:
                outcome.status = denied_status(outcome.decision)
                return outcome, None, None
            self.check_retention(clip)
            # Storage is touched only once the decision allows it. One open answers for the
            # headers and the body alike: for files, one worker-thread hop in all
            # (docs/benchmarks.md).
            opened = await self.storage.open(clip, whole=self._reads_whole(call))
            try:
                outcome.status, outcome.byte_range = served_part(call, opened.info)
            except BaseException:  # a 412 or 416: nothing will be served from it
                with anyio.CancelScope(shield=True):
                    await opened.close()
                raise
            return outcome, clip, opened
        except GatewayError as exc:
            outcome.status, outcome.error = exc.status, exc
            if exc.status in (400, 410):
                outcome.decision = Decision.deny(exc.code, outcome.decision.rule)
            return outcome, None, None
        except Exception as exc:  # deny by default: an error while deciding is a denial
            failed(outcome, exc)
            return outcome, None, None

    def _reads_whole(self, call: FootageCall) -> bool:
        """Whether an allowed answer is sure to stream the whole clip from here: a proxied GET
        with no Range and no condition (one that could end as a 206, 304 or 412)."""
        plain = call.range_header is None and call.if_match is None and call.if_none_match is None
        proxied = self.presigner is None and self.accel_prefix is None
        return call.method == "GET" and plain and proxied

    async def list_clips(self, call: FootageCall) -> tuple[dict[str, Any], dict[str, str]]:
        """The clips of one camera the caller may see, as JSON, and the response headers."""
        principal = await self.identify(call)
        outcome = Outcome(principal, Decision.deny("bad_request"), status=400)
        clips: list[dict[str, Any]] = []
        try:
            camera = resolve_camera(call)
            outcome.decision, outcome.zone = await self.authorize(call, principal, None, camera)
            outcome.status = 200 if outcome.decision else denied_status(outcome.decision)
            if outcome.decision:
                clips = await self._visible_clips(camera, outcome)
        except GatewayError as exc:
            outcome.status, outcome.error = exc.status, exc
            if exc.status == 400:
                outcome.decision = Decision.deny(exc.code)
        except Exception as exc:  # deny by default: an error while deciding is a denial
            failed(outcome, exc)
            clips = []
        event = await self.recorder.decision(call, outcome)
        headers = {"X-Audit-Event-ID": event["event_id"], "X-Request-ID": call.request_id}
        if outcome.status >= 400:
            raise error_for(outcome, headers, call)
        return {"clips": clips}, headers

    async def _visible_clips(self, camera: CameraRef, outcome: Outcome) -> list[dict[str, Any]]:
        listed = await self.storage.list_clips(camera)
        window = await self._grant_window(outcome.decision.grant_id)
        out = []
        for item in sorted(listed, key=lambda c: c.clip_id):
            recorded_at = clip_recorded_at(item.clip_id)
            if recorded_at is None or self._expired(recorded_at):
                continue
            if window and not window[0] <= recorded_at <= window[1]:
                continue  # staff see only the stretch of footage the owner granted
            out.append(
                {
                    "clip_id": item.clip_id,
                    "recorded_at": recorded_at.isoformat(),
                    "size": item.size,
                    "zone": str(outcome.zone),
                }
            )
        return out

    async def _grant_window(self, grant_id: str | None) -> tuple[datetime, datetime] | None:
        if grant_id is None:
            return None
        grant = await anyio.to_thread.run_sync(self.grants.get, grant_id)
        return grant.footage_from, grant.footage_until

    async def authorize(
        self,
        call: FootageCall,
        principal: Principal,
        clip: ClipRef | None,
        camera: CameraRef | None = None,
        *,
        admit: bool = True,
    ) -> tuple[Decision, Zone]:
        """The decision and the camera's zone (a view's, or a playback's); `admit=False` re-asks
        without counting a look."""
        camera = camera or (clip.camera if clip else None)
        assert camera is not None
        now = self.clock()
        facts = await self.facts.read(principal, camera, now)
        if facts.suspended:
            return Decision.deny("principal_suspended", SUSPENSION_RULE), facts.zone
        purpose, justification = staff_headers(call)
        request = AccessRequest(
            principal=principal,
            action=call.action,
            camera=camera,
            zone=facts.zone,
            purpose=purpose,
            justification=justification,
            recorded_at=clip.recorded_at if clip else None,
            now=now,
        )
        decision = self.authorizer.decide(request, facts.grants)
        if decision and admit and self.admit is not None:
            clip_id = clip.clip_id if clip else None
            decision = await self.admit(request, decision, call.method, clip_id)
        return decision, facts.zone

    def _expired(self, recorded_at: datetime) -> bool:
        if self.retention_days is None:
            return False
        return recorded_at < datetime.now(UTC) - timedelta(days=self.retention_days)

    def check_retention(self, clip: ClipRef) -> None:
        if self._expired(clip.recorded_at):
            raise RetentionExpired("This footage is past its retention period.")


def served_part(call: FootageCall, info: ObjectInfo) -> tuple[int, ByteRange | None]:
    """The status and range to answer with, by the conditional and Range headers (RFC 9110 §13)."""
    if evaluate(call.if_match, call.if_none_match, info.etag) == Condition.NOT_MODIFIED:
        return 304, None
    byte_range = parse_range(call.range_header, info.size)  # RangeNotSatisfiable → 416
    if byte_range is not None and not range_applies(call.if_range, info.etag, info.last_modified):
        byte_range = None  # the client's piece is of another version: send the whole clip
    return (206 if byte_range else 200), byte_range


# A stream's re-check that finds the clip itself gone: the reason, and access.complete's
# `detail.ended_by` (contract §7, "A stream whose permission ends").
CLIP_DELETED = "clip_deleted"
RETENTION_EXPIRED = "retention_expired"
_CLIP_ENDINGS = {CLIP_DELETED: "deleted", RETENTION_EXPIRED: "retention"}

# The `rule` of a suspended principal's denial: the principals table, not the policy, decides.
SUSPENSION_RULE = "principal_status: suspended"


def _range_bounds(byte_range: ByteRange | None) -> tuple[int | None, int | None]:
    return (byte_range.start, byte_range.end) if byte_range else (None, None)
