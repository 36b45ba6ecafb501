"""Policy hot reload on every replica: a file poll, plus a Casbin-watcher-style broadcast.

Each replica polls its policy files (model.conf, policy.csv) a few times a second. When their
content changes and has stopped changing (a half-written file is never loaded), the replica
checks the new policy, swaps it in, writes a `policy.reloaded` audit event and announces the
new content hash on the cluster bus; every other replica then re-reads its own files at once,
as a Casbin watcher's update callback would, without waiting for its own poll.

A reload that fails (unreadable, unparsable, empty, or a rule that allows every role) keeps
the last good policy, and says so loudly: an error log line, a `policy.reloaded` event with
`reason: "failed"` and the `footgw_policy_reloads{result="failed"}` counter. A replica whose
files hash differently from what another announced logs `policy_divergent`: the replicas are
enforcing different policies until their files agree (see docs/deploy.md on ConfigMaps).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.audit.events import Event, new_event
from gateway.authz import PolicyEngine
from gateway.background import spawn
from gateway.types import EventType

log = structlog.get_logger("gateway.cluster")

POLICY_FILES = ("model.conf", "policy.csv")
OPTIONAL_FILES = ("approvals.toml",)  # reloaded with the policy (gateway/approvals.py)
POLL_SECONDS = 0.25
SETTLE_SECONDS = 0.1
ACTOR = "gateway:policy"
TOPIC = "policy"
POLICY_FIELDS = 6  # model.conf: p = role, purpose, act, zone, eft, cond
PROBE_ROLE = "__footgw_no_such_role__"  # a role nobody holds: a rule that lets it in is allow-all

Record = Callable[[Event], Awaitable[Any]]
Publish = Callable[..., Awaitable[bool]]


class UnsafePolicy(ValueError):
    """The new policy would allow a role it does not name; it is refused."""


def fingerprint(policy_dir: Path) -> str:
    """sha256 over the policy files' contents ("missing:<name>" if one cannot be read)."""
    digest = hashlib.sha256()
    for name in POLICY_FILES:
        try:
            digest.update((policy_dir / name).read_bytes())
        except OSError:
            return f"missing:{name}"
        digest.update(b"\0")
    for name in OPTIONAL_FILES:  # absent means the defaults: a change all the same
        path = policy_dir / name
        digest.update(path.read_bytes() if path.is_file() else b"absent")
        digest.update(b"\0")
    return digest.hexdigest()


def check_candidate(policy_dir: Path) -> int:
    """Load the files into a throwaway engine and refuse what must never be loaded.

    Casbin itself accepts a row with missing fields (it then matches nothing), and has no
    notion of "every role": both are checked here, the latter twice, on the rows and by
    asking the candidate about a role nobody holds (a matcher can let anyone in too).
    Returns the candidate's rule count.
    """
    rows = _rows((policy_dir / "policy.csv").read_text())
    for row in rows:
        if len(row) != POLICY_FIELDS + 1 or row[5] not in ("allow", "deny"):
            raise UnsafePolicy(
                f"rule {', '.join(row)!r} is not role, purpose, act, zone, allow|deny, cond"
            )
        if row[1] == "*" and row[5] == "allow":
            raise UnsafePolicy(f"rule {', '.join(row)!r} allows every role")
    candidate = PolicyEngine(policy_dir)  # raises on a bad model or no rules
    # A matcher that ignores the role lets the probe in exactly where an allow row matches, so
    # asking once per allow row's (purpose, act, zone) finds it, without asking about every
    # combination (each ask runs Casbin uncached on this throwaway engine; docs/benchmarks.md).
    probes = {(row[2], row[3], row[4]) for row in rows if row[5] == "allow"}
    for purpose, action, zone in sorted(probes):
        if candidate.rule_for(PROBE_ROLE, purpose, action, zone).allowed:
            raise UnsafePolicy(f"a role nobody holds may {action} for {purpose} in {zone}")
    return candidate.rule_count


def _rows(csv_text: str) -> list[list[str]]:
    """The `p` rows of a Casbin policy CSV, as stripped cells (comments and blanks skipped)."""
    rows = [[c.strip() for c in line.split(",")] for line in csv_text.splitlines()]
    return [r for r in rows if r and r[0] == "p"]


class PolicyMetrics:
    """The watcher's Prometheus series, on the app's registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.reloads = Counter(
            "footgw_policy_reloads",
            "Policy reload attempts",
            ["result", "trigger"],
            registry=registry,
        )
        self.rules = Gauge("footgw_policy_rules", "Rules in the policy in force", registry=registry)


class PolicyWatcher:
    """Polls the policy files, reloads the engine, announces and hears announcements."""

    def __init__(
        self,
        policy: PolicyEngine,
        policy_dir: Path,
        *,
        node: str,
        record: Record,
        publish: Publish | None = None,
        registry: CollectorRegistry | None = None,
        poll_seconds: float = POLL_SECONDS,
        settle: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.policy_dir = policy_dir
        self.node = node
        self.record = record
        self.publish = publish
        self.poll_seconds = poll_seconds
        # How the settle time is waited for: a parameter so that a test can finish an edit
        # exactly while the watcher waits, instead of racing its file reads in threads.
        self.settle = settle
        self.polling = True  # read on every turn: False leaves this node to the broadcast alone
        self.metrics = PolicyMetrics(registry)
        self.loaded_sha = fingerprint(policy_dir)  # what build_services just loaded
        self.failed_sha: str | None = None  # reported once, not on every poll
        self.reloads = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.metrics.rules.set(policy.rule_count)

    def start(self) -> None:
        """Poll in a background task of the running loop."""
        self._task = spawn(self._poll(), name="policy-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            if not self.polling:
                continue
            try:
                await self.check_files()
            except Exception as exc:  # the poll must outlive any one bad turn
                log.error("policy_poll_failed", error=str(exc))

    async def check_files(self, trigger: str = "file") -> None:
        """Reload if the files changed and settled; announce a change this node found."""
        sha = await anyio.to_thread.run_sync(fingerprint, self.policy_dir)
        if sha in (self.loaded_sha, self.failed_sha):
            return
        await self.settle(SETTLE_SECONDS)  # an editor may still be writing
        if await anyio.to_thread.run_sync(fingerprint, self.policy_dir) != sha:
            return  # still changing: the next turn looks again
        if await self._reload(sha, trigger) and trigger == "file" and self.publish is not None:
            await self.publish(TOPIC, sha256=sha)

    async def on_announcement(self, message: dict[str, Any]) -> None:
        """Another node loaded new policy files: re-read ours now (the watcher callback)."""
        announced = str(message.get("sha256", ""))
        sha = await anyio.to_thread.run_sync(fingerprint, self.policy_dir)
        if sha != announced:
            log.warning(
                "policy_divergent",
                node=self.node,
                ours=sha,
                announced=announced,
                announced_by=message.get("node"),
            )
        if sha not in (self.loaded_sha, self.failed_sha):
            await self._reload(sha, "broadcast")

    async def on_reconnect(self) -> None:
        """Announcements may have been missed while the bus was down: look at the files."""
        await self.check_files(trigger="reconnect")

    async def _reload(self, sha: str, trigger: str) -> bool:
        async with self._lock:
            if sha == self.loaded_sha:
                return False
            try:
                await anyio.to_thread.run_sync(check_candidate, self.policy_dir)
                # On the event loop, not in a thread: the engine's decision cache is filled from
                # the loop, so swapping here means no decision of the old policy lands in the
                # new cache.
                rules = self.policy.reload()
            except Exception as exc:  # keep the last good policy, loudly
                await self._failed(sha, trigger, exc)
                return False
            # Had the files changed again since the check, the next turn sees a new hash and
            # checks that version too.
            self.loaded_sha, self.failed_sha = sha, None
            self.reloads += 1
            self.metrics.reloads.labels("ok", trigger).inc()
            self.metrics.rules.set(rules)
            log.info("policy_reloaded", node=self.node, trigger=trigger, rules=rules, sha256=sha)
            await self._record(trigger, {"sha256": sha, "rules": rules, "ok": True})
            return True

    async def _failed(self, sha: str, trigger: str, exc: Exception) -> None:
        self.failed_sha = sha
        self.metrics.reloads.labels("failed", trigger).inc()
        kept = self.policy.rule_count
        log.error(
            "policy_reload_failed",
            node=self.node,
            trigger=trigger,
            sha256=sha,
            error=f"{type(exc).__name__}: {exc}",
            kept_rules=kept,
        )
        detail = {
            "sha256": sha,
            "ok": False,
            "trigger": trigger,
            "error": str(exc)[:300],
            "kept_rules": kept,
        }
        await self._record("failed", detail)

    async def _record(self, reason: str, detail: dict[str, Any]) -> None:
        event = new_event(
            EventType.POLICY_RELOADED,
            principal=ACTOR,
            action="policy.reload",
            reason=reason,
            detail={**detail, "node": self.node},
        )
        try:
            await self.record(event)
        except Exception as exc:  # the reload stands; the missing event is logged
            log.error("policy_reload_not_recorded", error=str(exc))
