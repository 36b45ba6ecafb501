"""Each detection rule alone, at and just below its threshold, with an injected clock.

The detector runs in-process against a real SQLite audit log, flag table and principal store;
events carry the times the test chooses, so sliding windows are exercised without sleeping.
"""

from __future__ import annotations

import asyncio
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import migrations
from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore, EventQuery
from gateway.cluster.identity import read_cluster_id
from gateway.db import create_db_engine
from gateway.detection.alerts import AlertSender
from gateway.detection.config import DetectionConfig, parse_detection_config
from gateway.detection.counters import CounterStore, MemoryCounters
from gateway.detection.detector import ACTOR, Detector
from gateway.detection.flags import Flag, FlagStore
from gateway.metrics import Metrics
from gateway.principals import PrincipalStore
from gateway.types import EventType, PrincipalState, format_ts

# A Wednesday, 10:00 UTC: inside the default working hours.
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Harness:
    """A detector over a fresh database; `access(...)` commits one decision and observes it."""

    def __init__(
        self,
        root: Path,
        config: DetectionConfig | None = None,
        counters: CounterStore | None = None,
        db: str | None = None,
    ) -> None:
        self.engine = create_db_engine(db or f"sqlite:///{root / 'gateway.db'}")
        migrations.migrate(self.engine)
        self.store = AuditStore(self.engine)
        self.audit = AuditLog(self.store)
        self.config = config or DetectionConfig()
        self.now = START
        self.principals = PrincipalStore(self.engine)
        self.detector = Detector(
            config=self.config,
            counters=counters or MemoryCounters(),
            flags=FlagStore(self.engine),
            principals=self.principals,
            audit=self.audit,
            audit_store=self.store,
            alerts=AlertSender(None, self.config.alerts),
            metrics=Metrics(),
            deployment_id=lambda: read_cluster_id(self.engine),
            clock=lambda: self.now,
        )
        self.runner = asyncio.Runner()
        self.clip_number = 0

    def access(
        self,
        sub: str = "sam",
        customer: str = "c1",
        *,
        at: datetime | None = None,
        clip: str | None = None,
        status: int = 200,
        decision: str = "allow",
        reason: str = "grant",
        purpose: str = "customer_support",
        zone: str = "outdoor",
        method: str = "GET",
        action: str = "view",
        roles: tuple[str, ...] = ("support_agent",),
    ) -> Event:
        if clip is None:
            self.clip_number += 1
            clip = f"20261124T{self.clip_number:06d}Z.mp4"
        event = new_event(
            EventType.ACCESS_DECISION,
            ts=format_ts(at or self.now),
            principal=sub,
            roles=list(roles),
            purpose=purpose,
            justification="T-1 help",
            action=action,
            customer_id=customer,
            camera_id="cam",
            clip_id=clip if action == "view" else None,
            decision=decision,
            reason=reason,
            status=status,
            detail={"rule": "", "zone": zone, "method": method},
        )
        committed = self.runner.run(self.audit.append(event))
        self.runner.run(self.detector(committed))
        return committed

    def deny(self, sub: str = "sam", reason: str = "no_grant", **kw: Any) -> Event:
        return self.access(sub, decision="deny", reason=reason, status=403, **kw)

    def flags(self, rule: str | None = None, status: str | None = None) -> list[Flag]:
        self.runner.run(self.detector.flush())  # evidence for open flags is written in batches
        found = self.detector.flags.search(status=status)
        return [f for f in found if rule is None or f.rule == rule]

    def events(self, event_type: EventType) -> list[Event]:
        return self.store.query(EventQuery(types=(str(event_type),), limit=1000))

    def suspended(self, sub: str = "sam") -> bool:
        return self.principals.status(sub).suspended

    def close(self) -> None:
        self.runner.run(self.audit.close())
        self.runner.run(self.detector.close())
        self.runner.close()
        self.engine.dispose()


def config_from(text: str) -> DetectionConfig:
    return parse_detection_config(tomllib.loads(text))


# Everything but the rule under test is switched off, so each rule is seen alone.
ALL_RULES = (
    "customer_browsing",
    "bulk_viewing",
    "repeated_denials",
    "clip_probing",
    "private_zone_access",
    "break_glass",
    "legal_request",
    "off_hours",
)


def only(rule: str, extra: str = "") -> DetectionConfig:
    raw = tomllib.loads(extra)
    rules = raw.setdefault("rules", {})
    for other in ALL_RULES:
        if other != rule:
            rules.setdefault(other, {})["enabled"] = False
    return parse_detection_config(raw)


@pytest.fixture
def harness_factory(tmp_path):
    made: list[Harness] = []

    def make(config: DetectionConfig | None = None, **kw: Any) -> Harness:
        made.append(Harness(tmp_path / str(len(made)), config, **kw))
        return made[-1]

    for i in range(4):
        (tmp_path / str(i)).mkdir()
    yield make
    for h in made:
        h.close()


# --- the contract's default thresholds (policies/detection.toml), at and just below -----------


def test_the_shipped_file_is_the_contract_defaults():
    from gateway.detection.config import load_detection_config
    from gateway.settings import REPO_POLICY_DIR

    rules = load_detection_config(REPO_POLICY_DIR).rules
    assert (rules["customer_browsing"].flag_at, rules["customer_browsing"].suspend_at) == (5, 10)
    assert rules["customer_browsing"].window_minutes == 60
    assert rules["customer_browsing"].severity == "high"
    assert (rules["bulk_viewing"].flag_at, rules["bulk_viewing"].suspend_at) == (31, 101)
    assert rules["bulk_viewing"].window_minutes == 10
    assert (rules["repeated_denials"].flag_at, rules["repeated_denials"].suspend_at) == (5, 20)
    assert (rules["clip_probing"].flag_at, rules["clip_probing"].suspend_at) == (5, 20)
    assert rules["clip_probing"].window_minutes == 10
    assert rules["break_glass"].severity == "high" and rules["off_hours"].severity == "low"


def test_customer_browsing_flags_at_5_customers_not_4(harness_factory):
    h = harness_factory(only("customer_browsing"))
    for i in range(4):
        h.access(customer=f"c{i}")
    assert h.flags() == []
    fifth = h.access(customer="c4")
    [flag] = h.flags("customer_browsing")
    assert flag.severity == "high" and flag.principal == "sam" and flag.status == "open"
    assert len(flag.event_ids) == 5 and flag.event_ids[-1] == fifth["event_id"]
    assert not h.suspended()


def test_customer_browsing_suspends_at_10_customers_not_9(harness_factory):
    h = harness_factory(only("customer_browsing"))
    for i in range(9):
        h.access(customer=f"c{i}")
    assert not h.suspended()
    tenth = h.access(customer="c9")
    assert h.suspended()
    [event] = h.events(EventType.PRINCIPAL_SUSPENDED)
    assert event["principal"] == ACTOR and event["request_id"] == tenth["request_id"]
    assert event["detail"]["subject"] == "sam" and event["detail"]["by"] == "rule"
    assert event["detail"]["rule"] == "customer_browsing"
    [flag] = h.flags("customer_browsing")  # the same flag, extended: not one per request
    assert event["detail"]["flag_id"] == flag.flag_id and len(flag.event_ids) == 10


def test_bulk_viewing_flags_above_30_clips_and_suspends_above_100(harness_factory):
    h = harness_factory(only("bulk_viewing"))
    for _ in range(30):
        h.access()
    assert h.flags() == []
    h.access()
    [flag] = h.flags("bulk_viewing")
    assert flag.severity == "medium" and len(flag.event_ids) == 31
    for _ in range(100 - 31):
        h.access()
    assert not h.suspended()
    h.access()
    assert h.suspended()


def test_repeated_denials_flag_at_5_and_suspend_at_20(harness_factory):
    h = harness_factory(only("repeated_denials"))
    for _ in range(4):
        h.deny()
    assert h.flags() == []
    h.deny()
    assert [f.rule for f in h.flags()] == ["repeated_denials"]
    for _ in range(14):
        h.deny()
    assert not h.suspended()
    h.deny()
    assert h.suspended()


# --- what counts ---------------------------------------------------------------------------

LOW = """
[rules.customer_browsing]
flag_at = 3
suspend_at = 4
[rules.bulk_viewing]
flag_at = 3
suspend_at = 5
[rules.repeated_denials]
flag_at = 3
suspend_at = 4
"""


def test_windows_slide_old_views_stop_counting(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    h.access(customer="a", at=START)
    h.access(customer="b", at=START + timedelta(minutes=30))
    h.access(customer="c", at=START + timedelta(minutes=61))  # "a" is out of the 60 min window
    assert h.flags() == []
    h.access(customer="d", at=START + timedelta(minutes=62))
    [flag] = h.flags()
    assert flag.detail["count"] == 3


def test_the_same_customer_again_is_not_a_new_customer(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    for _ in range(5):
        h.access(customer="a")
    h.access(customer="b")
    assert h.flags() == []


def test_customers_reading_their_own_footage_are_never_counted(harness_factory):
    h = harness_factory(config_from(LOW))
    for i in range(6):
        h.access(
            f"owner{i}",
            customer=f"c{i}",
            roles=("customer",),
            reason="owner",
            purpose="",
            zone="private",
            at=START.replace(hour=23),
        )
        h.access("alice", customer="c1", roles=("customer",), reason="owner")
        # a staff member who is also a customer, reading their own footage
        h.access("bob", customer="c9", roles=("customer", "support_agent"), reason="owner")
    assert h.flags() == []


def test_ranged_requests_of_one_clip_are_one_clip_and_head_is_no_view(harness_factory):
    h = harness_factory(only("bulk_viewing", LOW))
    for _ in range(10):
        h.access(clip="20261124T101010Z.mp4", status=206)
    h.access(method="HEAD")
    h.access(method="HEAD")
    h.access(status=404)  # allowed but nothing shown
    h.access(action="list")  # a listing is not a clip
    h.access()
    assert h.flags() == []  # two clips so far: the ranged one and the last
    h.access()
    assert [f.rule for f in h.flags()] == ["bulk_viewing"]


def test_listings_count_toward_customer_browsing(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    for customer in ("a", "b", "c"):
        h.access(customer=customer, action="list")
    assert [f.rule for f in h.flags()] == ["customer_browsing"]


def test_heads_and_allowed_404s_count_toward_customer_browsing(harness_factory):
    """Metadata is footage (contract §8): a HEAD or a 404 says when someone was home."""
    h = harness_factory(only("customer_browsing", LOW))
    h.access(customer="a", method="HEAD")
    h.access(customer="b", status=404)
    assert h.flags() == []
    h.access(customer="c", method="HEAD", status=404)
    [flag] = h.flags("customer_browsing")
    assert flag.detail["count"] == 3
    h.access(customer="d", method="HEAD")
    assert h.suspended()


def test_denied_heads_and_404s_do_not_count_toward_customer_browsing(harness_factory):
    """Negative: only an allowed request shows a customer anything."""
    h = harness_factory(only("customer_browsing", LOW))
    for customer in "abcdef":
        h.deny(customer=customer, method="HEAD")
        h.access(customer=customer, decision="deny", reason="no_grant", status=404)
    assert h.flags() == [] and not h.suspended()


PROBING = """
[rules.clip_probing]
flag_at = 3
suspend_at = 4
"""


def test_clip_probing_counts_distinct_missing_clips(harness_factory):
    h = harness_factory(only("clip_probing", PROBING))
    h.access(clip="20261124T000001Z.mp4", status=404)
    h.access(clip="20261124T000001Z.mp4", status=404, method="HEAD")  # the same clip again
    h.access(clip="20261124T000002Z.mp4", status=404, customer="c2")
    assert h.flags() == []
    third = h.access(clip="20261124T000003Z.mp4", status=404, method="HEAD")
    [flag] = h.flags("clip_probing")
    assert flag.severity == "medium" and flag.event_ids[-1] == third["event_id"]
    assert flag.detail["count"] == 3 and not h.suspended()
    h.access(clip="20261124T000004Z.mp4", status=404)
    assert h.suspended()
    [event] = h.events(EventType.PRINCIPAL_SUSPENDED)
    assert event["detail"]["rule"] == "clip_probing"


def test_clip_probing_ignores_found_clips_denials_and_owners(harness_factory):
    """Negative: only an allowed staff request answered 404 is a probe."""
    h = harness_factory(only("clip_probing", PROBING))
    for second in range(1, 7):
        clip = f"20261124T00000{second}Z.mp4"
        h.access(clip=clip)  # found
        h.access(clip=clip, method="HEAD")  # found
        h.access(clip=clip, decision="deny", reason="no_grant", status=404)  # refused
        h.access("alice", clip=clip, status=404, roles=("customer",), reason="owner")
    assert h.flags() == [] and not h.suspended()


def test_clip_probing_is_configurable_and_can_be_switched_off(harness_factory):
    h = harness_factory(only("clip_probing", "[rules.clip_probing]\nenabled = false\n"))
    for second in range(1, 10):
        h.access(clip=f"20261124T00000{second}Z.mp4", status=404)
    assert h.flags() == []


def test_only_403_denials_count_and_suspended_ones_not_again(harness_factory):
    h = harness_factory(only("repeated_denials", LOW))
    for _ in range(5):
        h.deny(reason="principal_suspended")
    h.access(decision="deny", reason="bad_request", status=400)  # malformed, not refused
    assert h.flags() == []


# --- single-event rules ----------------------------------------------------------------------


def test_private_zone_view_is_flagged_and_a_listing_or_denial_is_not(harness_factory):
    h = harness_factory(only("private_zone_access"))
    h.access(zone="private", action="list")
    h.deny(zone="private")
    h.access(zone="indoor")
    assert h.flags() == []
    h.access(zone="private")
    [flag] = h.flags()
    assert flag.rule == "private_zone_access" and flag.severity == "medium"


def test_break_glass_is_flagged_high_and_legal_for_review(harness_factory):
    h = harness_factory(config_from("[rules.off_hours]\nenabled = false\n"))
    h.access("lee", purpose="emergency", reason="break_glass", roles=("support_lead",))
    h.access("lou", purpose="legal_request", reason="legal_request", roles=("legal",))
    h.deny("lee2", purpose="emergency", roles=("support_agent",))
    flags = {f.rule: f for f in h.flags()}
    assert set(flags) == {"break_glass", "legal_request"}
    assert flags["break_glass"].severity == "high" and flags["break_glass"].principal == "lee"
    assert flags["legal_request"].principal == "lou"


def test_off_hours_uses_the_configured_zone_and_days(harness_factory):
    h = harness_factory(
        only(
            "off_hours",
            """
time_zone = "America/New_York"
[working_hours]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"
""",
        )
    )
    # 13:59 UTC on a Wednesday is 08:59 in New York: before the day starts.
    h.access("early", at=datetime(2026, 11, 25, 13, 59, tzinfo=UTC))
    h.access("work", at=datetime(2026, 11, 25, 14, 0, tzinfo=UTC))
    h.access("late", at=datetime(2026, 11, 25, 22, 0, tzinfo=UTC))  # 17:00 NY: over
    h.access("weekend", at=datetime(2026, 11, 28, 15, 0, tzinfo=UTC))  # a Saturday
    flagged = sorted(f.principal for f in h.flags("off_hours"))
    assert flagged == ["early", "late", "weekend"]
    assert all(f.severity == "low" for f in h.flags())


def test_a_disabled_rule_never_fires(harness_factory):
    h = harness_factory(config_from("[rules.private_zone_access]\nenabled = false\n"))
    h.access(zone="private")
    assert h.flags("private_zone_access") == []


# --- one flag per principal, rule and window -------------------------------------------------


def test_one_flag_per_window_collects_the_evidence(harness_factory):
    h = harness_factory(only("private_zone_access"))
    first = h.access(zone="private", at=START)
    second = h.access(zone="private", at=START + timedelta(minutes=20))
    h.access("other", zone="private", at=START + timedelta(minutes=21))
    mine = [f for f in h.flags() if f.principal == "sam"]
    assert len(mine) == 1 and mine[0].event_ids == [first["event_id"], second["event_id"]]
    raised = h.events(EventType.FLAG_RAISED)
    assert len(raised) == 2  # one per principal, not one per request
    h.access(zone="private", at=START + timedelta(minutes=70))  # the window is over
    assert len([f for f in h.flags() if f.principal == "sam"]) == 2


def test_threshold_flags_are_not_raised_again_per_request(harness_factory):
    h = harness_factory(
        only("customer_browsing", "[rules.customer_browsing]\nflag_at = 2\nsuspend_at = 50\n")
    )
    for i in range(8):
        h.access(customer=f"c{i}")
    [flag] = h.flags()
    assert len(flag.event_ids) == 8 and flag.detail["count"] == 8
    assert len(h.events(EventType.FLAG_RAISED)) == 1


def test_after_a_flag_is_resolved_new_evidence_raises_a_new_one(harness_factory):
    h = harness_factory(only("private_zone_access"))
    h.access(zone="private", at=START)
    [flag] = h.flags()
    h.detector.flags.resolve(flag.flag_id, "ok", "ana", START)
    h.access(zone="private", at=START + timedelta(minutes=1))
    assert len(h.flags(status="open")) == 1 and len(h.flags(status="resolved")) == 1
    # Resolved again within the same window: evidence never lands on a closed flag.
    [second] = h.flags(status="open")
    h.detector.flags.resolve(second.flag_id, "ok too", "ana", START)
    third = h.access(zone="private", at=START + timedelta(minutes=2))
    [open_flag] = h.flags(status="open")
    assert open_flag.event_ids == [third["event_id"]]
    assert len(h.flags(status="resolved")) == 2


def test_flag_raised_event_names_the_flag_and_its_evidence(harness_factory):
    h = harness_factory(only("private_zone_access"))
    cause = h.access(zone="private")
    [event] = h.events(EventType.FLAG_RAISED)
    [flag] = h.flags()
    assert event["principal"] == ACTOR and event["request_id"] == cause["request_id"]
    assert event["detail"]["flag_id"] == flag.flag_id
    assert event["detail"]["subject"] == "sam"
    assert event["detail"]["event_ids"] == [cause["event_id"]]


def test_forget_resets_the_counts(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    h.access(customer="a")
    h.access(customer="b")
    h.runner.run(h.detector.forget("sam"))
    h.access(customer="c")
    assert h.flags() == []


def test_summary_counts_the_last_hour(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    h.access(customer="old", at=START - timedelta(minutes=90))
    h.access(customer="a")
    h.access(customer="b", status=206)
    h.access(customer="b", method="HEAD")
    h.deny()
    summary = h.runner.run(h.detector.summary("sam"))
    assert summary["activity"]["views_last_hour"] == 2
    assert summary["activity"]["distinct_customers_last_hour"] == 2
    assert summary["activity"]["denials_last_hour"] == 1
    assert summary["open_flags"] == []


def test_a_suspended_principal_stays_suspended_once(harness_factory):
    h = harness_factory(only("customer_browsing", LOW))
    for i in range(6):
        h.access(customer=f"c{i}")
    assert len(h.events(EventType.PRINCIPAL_SUSPENDED)) == 1
    h.principals.set_status("sam", PrincipalState.ACTIVE, "", "ana", START)
    assert not h.suspended()


# --- configuration errors name the key -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[rules.customer_browsing]\nseverity = "urgent"\n', "rules.customer_browsing.severity"),
        (
            "[rules.customer_browsing]\nflag_at = 5\nsuspend_at = 3\n",
            "rules.customer_browsing.suspend_at",
        ),
        ("[rules.bulk_viewing]\nflag_at = 0\n", "rules.bulk_viewing.flag_at"),
        ("[rules.nonsense]\nflag_at = 1\n", "rules.nonsense"),
        ('time_zone = "Mars/Olympus"\n', "time_zone"),
        ('[working_hours]\nstart = "9am"\n', "working_hours.start"),
        ('[working_hours]\ndays = ["funday"]\n', "working_hours.days"),
    ],
)
def test_a_bad_detection_setting_names_its_key(text, key):
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_detection_config(tomllib.loads(text), "detection.toml")
    assert key in str(info.value)


def test_memory_counters_keep_distinct_members_in_a_sliding_window():
    from gateway.detection.counters import Tally

    async def scenario() -> list[list[int]]:
        store = MemoryCounters()
        t0 = START.timestamp()
        out = [await store.add([Tally("k", "c1", t0, 600), Tally("other", "x", t0, 600)])]
        out.append(await store.add([Tally("k", "c1", t0 + 10, 600)]))  # the same member again
        out.append(await store.add([Tally("k", "c2", t0 + 20, 600)]))
        out.append(await store.add([Tally("k", "c3", t0 + 611, 600)]))  # c1 (seen at +10) is out
        await store.forget(["k"])
        out.append(await store.add([Tally("k", "c9", t0 + 612, 600)]))
        return out

    assert asyncio.run(scenario()) == [[1, 1], [1], [2], [2], [1]]


def test_memory_admission_refuses_at_the_limit_and_counts_only_when_admitted():
    from gateway.detection.counters import Gate, Tally

    async def scenario() -> list[int | None]:
        store = MemoryCounters()
        t0 = START.timestamp()

        def gates(member: str, at: float) -> list[Gate]:
            return [
                Gate(Tally("denials", "", at, 600), 5, count=False),  # checked, never counted
                Gate(Tally("k", member, at, 600), 2),
            ]

        out = [await store.admit(gates("c1", t0))]
        out.append(await store.admit(gates("c1", t0 + 1)))  # the same member: still one
        out.append(await store.admit(gates("c2", t0 + 2)))  # reaches the limit: admitted
        out.append(await store.admit(gates("c1", t0 + 3)))  # at the limit: refused, even c1
        out.append(await store.admit(gates("c3", t0 + 4)))
        out.append(await store.admit(gates("c3", t0 + 603)))  # c1 and c2 left the window
        out.append((await store.add([Tally("k", "x", t0 + 603, 600)]))[0])  # c3 and x
        return out

    assert asyncio.run(scenario()) == [None, None, None, 1, 1, None, 2]


def test_a_flag_that_cannot_be_stored_does_not_stop_the_suspension(harness_factory, monkeypatch):
    h = harness_factory(only("customer_browsing", LOW))

    def broken(*_args: Any) -> Any:
        raise RuntimeError("flags table unavailable")

    monkeypatch.setattr(h.detector.flags, "raise_or_extend", broken)
    for customer in "abcd":
        h.access(customer=customer)
    assert h.suspended()
    [event] = h.events(EventType.PRINCIPAL_SUSPENDED)
    assert event["detail"]["flag_id"] is None


def test_admission_fails_closed_when_the_counters_cannot_be_reached(harness_factory):
    """Deny by default: a staff request that cannot be counted is refused, never waved on."""
    from gateway.detection.counters import CounterStoreUnavailable
    from gateway.types import AccessRequest, Action, CameraRef, Decision, Principal, Purpose, Zone

    class Unreachable(MemoryCounters):
        async def admit(self, gates: Any) -> int | None:
            raise CounterStoreUnavailable("connection refused")

    h = harness_factory(only("customer_browsing", LOW), counters=Unreachable())

    def request(*roles: str) -> AccessRequest:
        return AccessRequest(
            principal=Principal("sam", frozenset(roles), customer_id="c1"),
            action=Action.VIEW,
            camera=CameraRef("c1", "cam"),
            zone=Zone.OUTDOOR,
            purpose=Purpose.CUSTOMER_SUPPORT,
            justification="T-1 help",
            now=START,
        )

    allowed = Decision.allow("grant", "p, support_agent", "g1")
    refused = h.runner.run(h.detector.admit(request("support_agent"), allowed, "GET", None))
    assert not refused and refused.reason == "detection_unavailable"
    # A customer reading their own footage is not counted, so never refused for it.
    owner = Decision.allow("owner")
    assert h.runner.run(h.detector.admit(request("customer"), owner, "GET", None)) is owner


def test_admission_counts_from_the_first_request_of_a_new_deployment(harness_factory):
    """The counters' namespace exists before any audit event: what a brand-new deployment
    admits before its first event commits still counts once that event is written (a burst at
    start-up once got past the threshold when the namespace changed under it)."""
    from gateway.types import AccessRequest, Action, CameraRef, Decision, Principal, Purpose, Zone

    h = harness_factory(only("customer_browsing", LOW))  # suspend_at = 4 customers
    assert h.store.query(EventQuery(limit=1)) == []  # a deployment with no event yet

    def admit(customer: str) -> Decision:
        request = AccessRequest(
            principal=Principal("lou", frozenset({"legal"})),
            action=Action.VIEW,
            camera=CameraRef(customer, "cam"),
            zone=Zone.OUTDOOR,
            purpose=Purpose.LEGAL_REQUEST,
            justification="SUBPOENA-9",
            now=START,
        )
        allowed = Decision.allow("justified", "p, legal")
        return h.runner.run(h.detector.admit(request, allowed, "GET", None))

    assert all(admit(c) for c in ("c1", "c2", "c3"))  # before any event exists
    h.access(sub="someone-else", customer="c9")  # the deployment's first event commits
    assert admit("c4")  # the fourth customer: the threshold's worth
    refused = admit("c5")
    assert not refused and refused.reason == "principal_suspended"
