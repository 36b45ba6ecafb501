"""The detector: admission inside each decision, and an observer of committed
`access.decision` events that flags and suspends.

Observing alone cannot stop a sweep: every request already in flight read "not suspended"
before the first of them was counted. So the decision asks `admit` first (contract §8,
"Admission"): one atomic step of the counter store checks every suspend threshold of the
principal and counts the customer this request shows. A principal at a threshold is refused
`principal_suspended` whatever the concurrency, on one replica or many, and the request that
crosses it is the last one admitted. The observer then raises the flags and writes the
suspension itself, before that request's response is sent.

Per event: count it in the sliding windows (one round trip to the counter store), turn what
crossed a threshold into findings, and for each finding raise or extend a flag, write
`flag.raised` for a new one, alert when it is high, and suspend when the rule says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import structlog

from gateway.audit.companions import Companion
from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.background import spawn
from gateway.detection.activity import recent_activity, staff_accesses
from gateway.detection.alerts import AlertSender
from gateway.detection.config import DetectionConfig
from gateway.detection.counters import CounterStore, CounterStoreUnavailable
from gateway.detection.evidence import FLUSH_SECONDS, EvidenceBuffer, Held
from gateway.detection.flags import Flag, FlagStore, NewFlag
from gateway.detection.rules import (
    WINDOW_RULES,
    Access,
    Finding,
    access_of,
    admission_gates,
    attempt_of,
    counter_key,
    counts_for,
    instant_findings,
    tallies_for,
    window_findings,
)
from gateway.errors import DetectionUnavailable, GatewayError
from gateway.metrics import Metrics
from gateway.principals import PrincipalStore
from gateway.types import (
    AccessRequest,
    Decision,
    EventType,
    FlagStatus,
    PrincipalState,
    Severity,
)

log = structlog.get_logger("gateway.detection")

# Who the audit log names as the actor of what detection does on its own.
ACTOR = "gateway:detection"


@dataclass
class Detector:
    """Rules over the audit stream → flags, suspensions and alerts."""

    config: DetectionConfig
    counters: CounterStore
    flags: FlagStore
    principals: PrincipalStore
    audit: AuditLog
    audit_store: AuditStore
    alerts: AlertSender
    metrics: Metrics
    # The deployment's id (a blocking read, made once): the namespace of its counters.
    deployment_id: Callable[[], str]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        # One finding at a time per principal, so concurrent requests extend one flag.
        self._locks: dict[str, asyncio.Lock] = {}
        self._namespace_id: str | None = None
        # Evidence for flags already open, written in batches (gateway/detection/evidence.py).
        self.evidence = EvidenceBuffer()
        self._flush_lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def __call__(self, event: Event) -> None:
        """Observe one committed event (the FootageFlow observer signature)."""
        access = access_of(event)
        if access is None:
            return
        findings = await self._window_findings(access) + instant_findings(access, self.config)
        if not findings:
            return
        async with self._locks.setdefault(access.principal, asyncio.Lock()):
            for finding in findings:
                await self._act(access, event, finding)

    async def admit(
        self, request: AccessRequest, decision: Decision, method: str, clip_id: str | None
    ) -> Decision:
        """The allowed decision, or a refusal when the principal is at a suspend threshold.

        Fails closed: when the counters cannot be reached, staff access is refused.
        """
        access = attempt_of(request, decision, method, clip_id)
        gates = admission_gates(access, self.config) if access is not None else []
        if not gates:
            return decision
        try:
            namespace = await self._namespace()
            refused = await self.counters.admit(
                [
                    replace(g, tally=replace(g.tally, key=f"{namespace}:{g.tally.key}"))
                    for _, g in gates
                ]
            )
        except Exception as exc:  # deny by default: a request never goes uncounted (§8)
            log.error("detection_admission_unavailable", error=str(exc))
            return Decision.deny("detection_unavailable", "detection:admission")
        if refused is None:
            return decision
        rule = gates[refused][0]
        log.warning("detection_admission_refused", principal=request.principal.sub, rule=rule)
        return Decision.deny("principal_suspended", f"detection:{rule}")

    async def raise_flag(
        self, rule: str, subject: str, event_id: str, detail: dict[str, Any]
    ) -> str | None:
        """Raise (or extend) a flag found outside the access stream (an overdue review);
        its id, or None when the rule is disabled or the flag cannot be stored (logged)."""
        config = self.config.rule(rule)
        if config is None:
            return None
        now = self.clock()
        finding = Finding(rule, config.severity, config.window_seconds)
        new = NewFlag(
            rule=rule,
            severity=config.severity,
            principal=subject,
            window_key=finding.window_key(now),
            window=timedelta(seconds=config.window_seconds),
            event_id=event_id,
            detail=detail,
        )
        try:
            flag, created = await anyio.to_thread.run_sync(
                self.flags.raise_or_extend, new, now, lambda: [event_id]
            )
        except Exception as exc:
            log.error("flag_not_stored", rule=rule, principal=subject, error=str(exc))
            return None
        if created:
            await self._flag_raised(flag, None)
        return flag.flag_id

    async def _window_findings(self, access: Access) -> list[Finding]:
        tallies = tallies_for(access, self.config)
        if not tallies:
            return []
        try:
            namespace = await self._namespace()
            counts = await self.counters.add(
                [replace(tally, key=f"{namespace}:{tally.key}") for _, tally in tallies]
            )
        except Exception as exc:  # detection degrades to the single-event rules, loudly
            log.error("detection_counters_unavailable", error=str(exc))
            return []
        return window_findings(
            [(name, count) for (name, _), count in zip(tallies, counts, strict=True)],
            self.config,
        )

    async def _act(self, access: Access, event: Event, finding: Finding) -> None:
        new = NewFlag(
            rule=finding.rule,
            severity=finding.severity,
            principal=access.principal,
            window_key=finding.window_key(access.at),
            window=timedelta(seconds=finding.window_seconds),
            event_id=access.event_id,
            detail=_finding_detail(finding),
        )
        flag = await self._store_flag(access, event, finding, new)
        if finding.suspend:
            await self._suspend(access, event, finding, flag)

    async def _store_flag(
        self, access: Access, event: Event, finding: Finding, new: NewFlag
    ) -> Flag | None:
        """Raise or extend the flag; None (logged) when it cannot be stored.

        A flag this process knows to be open takes the evidence in memory (no write): it is
        written in a batch (`flush`).
        """
        held = self.evidence.hold(new, access.at, event.get("request_id"))
        if held is not None:
            self._schedule_flush()
            return held
        try:
            flag, created = await anyio.to_thread.run_sync(
                self.flags.raise_or_extend, new, access.at, lambda: self._evidence(access, finding)
            )
        except Exception as exc:  # a flag that cannot be stored must not stop a suspension
            log.error(
                "flag_not_stored", rule=finding.rule, principal=access.principal, error=str(exc)
            )
            return None
        self.evidence.remember(flag, new.window)
        if created:
            await self._flag_raised(flag, event.get("request_id"))
        return flag

    def _schedule_flush(self) -> None:
        """Write the held evidence now if a flag holds enough, else within FLUSH_SECONDS."""
        if self.evidence.full():
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            self._flush_soon()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FLUSH_SECONDS, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_timer = None
        task = spawn(self.flush(), name="flag-evidence-flush")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        """Write the evidence held for open flags: one UPDATE per flag. Evidence for a flag
        that was closed meanwhile raises a new flag, as it would have had it come one by one."""
        async with self._flush_lock:
            taken = self.evidence.take()
            if taken:
                batches = [(flag.flag_id, [h.new for h in held]) for flag, held in taken]
                try:
                    stored = await anyio.to_thread.run_sync(self.flags.extend_batch, batches)
                except Exception as exc:  # logged, as a flag that cannot be stored at once is
                    log.error("flag_evidence_not_stored", flags=len(batches), error=str(exc))
                    stored = [flag for flag, _ in taken]  # not raised again: the same error
                for (flag, held), done in zip(taken, stored, strict=True):
                    if done is None:
                        await self._raise_again(flag, held + self.evidence.drop(flag))
            self.evidence.expire(self.clock())

    async def _raise_again(self, closed: Flag, held: list[Held]) -> None:
        try:
            await self._raise_held(closed, held)
        except Exception as exc:  # logged, as a flag that cannot be stored at once is
            log.error(
                "flag_not_stored", rule=closed.rule, principal=closed.principal, error=str(exc)
            )

    async def _raise_held(self, closed: Flag, held: list[Held]) -> None:
        last = held[-1]
        flag, created = await anyio.to_thread.run_sync(
            self.flags.raise_or_extend, last.new, last.at, lambda: [h.new.event_id for h in held]
        )
        if not created:  # another worker raised it first: add all of ours to it
            news = [h.new for h in held]
            extended = await anyio.to_thread.run_sync(self.flags.extend_many, flag.flag_id, news)
            flag = extended or flag
        self.evidence.remember(flag, last.new.window)
        if created:
            await self._flag_raised(flag, last.request_id)
        log.info("flag_closed_raised_again", closed=closed.flag_id, flag_id=flag.flag_id)

    def _evidence(self, access: Access, finding: Finding) -> list[str]:
        """The events in the window that count for a new window-rule flag (oldest first)."""
        if finding.threshold is None:
            return [access.event_id]
        since = access.at - timedelta(seconds=finding.window_seconds)
        return [
            e["event_id"]
            for e, a in staff_accesses(self.audit_store, access.principal, since)
            if a.at <= access.at and counts_for(finding.rule, a, self.config)
        ]

    async def _flag_raised(self, flag: Flag, request_id: str | None) -> None:
        self.metrics.flag_raised(flag.rule, flag.severity)
        log_fields = {"flag_id": flag.flag_id, "rule": flag.rule, "severity": flag.severity}
        alert = {"flag": flag.as_json()}
        rows = self.alerts.rows("flag.raised", alert) if flag.severity is Severity.HIGH else ()
        await self._append(
            new_event(
                EventType.FLAG_RAISED,
                request_id=request_id,
                principal=ACTOR,
                action="flag.raise",
                detail={
                    **log_fields,
                    "subject": flag.principal,
                    "event_ids": flag.event_ids,
                    **flag.detail,
                },
            ),
            rows,
        )

    async def _suspend(
        self, access: Access, cause: Event, finding: Finding, flag: Flag | None
    ) -> None:
        reason = f"{finding.rule}: {finding.count} within {finding.window_seconds / 60:g} min"
        changed = await anyio.to_thread.run_sync(
            self.principals.set_status,
            access.principal,
            PrincipalState.SUSPENDED,
            reason,
            ACTOR,
            self.clock(),
        )
        if not changed:
            return  # already suspended: one suspension, one event
        detail = {
            "subject": access.principal,
            "reason": reason,
            "by": "rule",
            "rule": finding.rule,
            "flag_id": flag.flag_id if flag else None,
            "count": finding.count,
        }
        await self._append(
            new_event(
                EventType.PRINCIPAL_SUSPENDED,
                request_id=cause.get("request_id"),
                principal=ACTOR,
                action=str(EventType.PRINCIPAL_SUSPENDED),
                detail=detail,
            ),
            self.alerts.rows("principal.suspended", detail),
        )

    async def _append(self, event: Event, alerts: Sequence[Companion] = ()) -> None:
        """Append the event with its alert rows (the outbox: both commit, or neither)."""
        try:
            await self.audit.append(event, alerts)
        except GatewayError as exc:  # the flag or suspension stands; the gap is logged
            log.error("detection_event_not_recorded", type=event["type"], error=exc.message)
            await self.alerts.unrecorded(alerts)  # the alert is still sent

    async def ready(self) -> None:
        """Raise DetectionUnavailable unless the counters answer (/readyz asks)."""
        try:
            await self.counters.check()
        except CounterStoreUnavailable as exc:
            raise DetectionUnavailable(f"the counter store cannot be reached ({exc})") from exc

    async def summary(self, sub: str) -> dict[str, Any]:
        """Open flags and the last hour's activity of one principal (GET /v1/principals/{sub})."""
        await self.flush()  # what this process holds is in the answer
        now = self.clock()
        open_flags = await anyio.to_thread.run_sync(
            lambda: self.flags.search(status=FlagStatus.OPEN, principal=sub)
        )
        activity = await anyio.to_thread.run_sync(recent_activity, self.audit_store, sub, now)
        return {"open_flags": [f.as_json() for f in open_flags], "activity": activity}

    async def forget(self, sub: str) -> None:
        """Reset a principal's counters (on reinstatement, or they would be suspended again)."""
        namespace = await self._namespace()
        await self.counters.forget(
            [f"{namespace}:{counter_key(rule.name, sub)}" for rule in WINDOW_RULES]
        )

    async def _namespace(self) -> str:
        """This deployment's id: the namespace of its counters.

        Every replica of one deployment shares it (it lives in the database from the first
        migration on, before any request), so they share counters; another deployment (or a
        test) on the same Redis never counts into them. It must never change while the gateway
        serves: counts made under one namespace are not seen under another, and a threshold
        would start again from zero.
        """
        if self._namespace_id is None:
            self._namespace_id = await anyio.to_thread.run_sync(self.deployment_id)
        return self._namespace_id

    async def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        await asyncio.gather(*self._flushes, return_exceptions=True)
        await self.flush()  # every held event on its flag before the process ends
        await self.counters.close()


def _finding_detail(finding: Finding) -> dict[str, Any]:
    if finding.threshold is None:
        return {}
    return {
        "count": finding.count,
        "threshold": finding.threshold,
        "window_minutes": finding.window_seconds / 60,
    }
