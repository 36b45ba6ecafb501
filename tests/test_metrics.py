"""Every series /metrics exports moves when its event happens, seen over real HTTP.

A uvicorn gateway on an ephemeral port, driven by httpx: footage requests allowed and denied,
a ranged read, a HEAD, a break-glass view that raises a flag, and a policy edit the file poll
reloads. Each counter is checked against a number the test knows, and against the audit log
and the flags API it summarises, so a counter wired to the wrong place cannot pass.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import REPO_POLICY_DIR
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.server import Live, make_env, start_live, wait_for

CLIP = (datetime.now(UTC) - timedelta(days=1)).strftime(RECORDED_AT_FORMAT) + ".mp4"
DATA = bytes(range(256)) * 4096  # 1 MiB: more than one chunk, so it streams
FOOTAGE = f"/v1/footage/c1/front/{CLIP}"
LEGAL_VIEW = "p, legal, legal_request, view, *, allow, justified"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    policies = Path(shutil.copytree(REPO_POLICY_DIR, tmp_path / "policies"))
    env = make_env(tmp_path, {"FOOTGW_POLICY_DIR": str(policies)})
    env.put_clip("c1", "front", CLIP, DATA)
    env.set_zone("c1", "front", Zone.OUTDOOR)
    with start_live(env) as running:
        yield running


def scrape(live: Live) -> Samples:
    """Every sample on /metrics, by name and labels."""
    r = live.client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def owner(live: Live, **headers: str) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1", **headers)


def analyst(live: Live) -> dict[str, str]:
    return live.env.auth("ana", "security_analyst")


def audit_events(live: Live, event_type: str) -> list[dict]:
    r = live.client.get(
        "/v1/audit/events", params={"type": event_type, "limit": 1000}, headers=analyst(live)
    )
    assert r.status_code == 200
    return list(r.json()["events"])


def break_glass(live: Live) -> dict[str, str]:
    """A break-glass view: always flagged high (contract §8)."""
    return {
        "Authorization": f"Bearer {live.env.token('lee', 'trust_safety', ttl=600)}",
        "X-Access-Purpose": "emergency",
        "X-Access-Justification": "INC-7 fire",
    }


def test_footage_requests_move_the_request_decision_and_byte_series(live: Live) -> None:
    before = scrape(live)
    assert live.client.get(FOOTAGE, headers=owner(live)).status_code == 200
    ranged = live.client.get(FOOTAGE, headers=owner(live, Range="bytes=10-109"))
    assert ranged.status_code == 206
    assert live.client.head(FOOTAGE, headers=owner(live)).status_code == 200
    stranger = live.env.auth("bob", "customer", customer_id="c2")
    assert live.client.get(FOOTAGE, headers=stranger).status_code == 403
    assert live.client.get(FOOTAGE).status_code == 401
    # access.complete, where bytes are counted, is written as the stream ends: a moment after
    # the client has the last byte.
    wait_for(lambda: len(audit_events(live, "access.complete")) == 3)
    after = scrape(live)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("footgw_http_requests_total", route="/v1/footage", status="200") == 2
    assert moved("footgw_http_requests_total", route="/v1/footage", status="206") == 1
    assert moved("footgw_http_requests_total", route="/v1/footage", status="403") == 1
    assert moved("footgw_http_requests_total", route="/v1/footage", status="401") == 1
    assert moved("footgw_http_request_seconds_count", route="/v1/footage") == 5
    assert moved("footgw_access_decisions_total", decision="allow", reason="owner") == 3
    assert moved("footgw_access_decisions_total", decision="deny", reason="not_owner") == 1
    assert moved("footgw_access_decisions_total", decision="deny", reason="unauthenticated") == 1
    assert moved("footgw_footage_bytes_sent_total") == len(DATA) + 100  # HEAD sends none

    # The counters summarise the audit log: the same decisions, the same bytes.
    decisions = Counter((e["decision"], e["reason"]) for e in audit_events(live, "access.decision"))
    assert series(after, "footgw_access_decisions_total") == {
        frozenset({("decision", d), ("reason", r)}): float(n) for (d, r), n in decisions.items()
    }
    sent = sum(e["bytes_sent"] for e in audit_events(live, "access.complete"))
    assert value(after, "footgw_footage_bytes_sent_total") == sent


def test_a_new_flag_moves_the_flag_series_once(live: Live) -> None:
    assert not series(scrape(live), "footgw_flags_raised_total")
    assert live.client.get(FOOTAGE, headers=break_glass(live)).status_code == 200
    assert live.client.get(FOOTAGE, headers=break_glass(live)).status_code == 200
    samples = scrape(live)
    # The second view extends the open flag rather than raising another.
    assert value(samples, "footgw_flags_raised_total", rule="break_glass", severity="high") == 1
    r = live.client.get("/v1/flags", params={"limit": 1000}, headers=analyst(live))
    raised = Counter((f["rule"], f["severity"]) for f in r.json()["flags"])
    assert series(samples, "footgw_flags_raised_total") == {
        frozenset({("rule", rule), ("severity", sev)}): float(n)
        for (rule, sev), n in raised.items()
    }


def test_a_policy_edit_moves_the_reload_counter_and_the_rule_gauge(live: Live) -> None:
    rules = value(scrape(live), "footgw_policy_rules")
    assert rules > 0
    assert value(scrape(live), "footgw_policy_reloads_total", result="ok", trigger="file") == 0
    policy = Path(live.env.settings.policy_dir) / "policy.csv"
    policy.write_text(policy.read_text().replace(LEGAL_VIEW, "# legal may no longer view"))

    def reloaded() -> Samples | None:
        samples = scrape(live)
        ok = value(samples, "footgw_policy_reloads_total", result="ok", trigger="file")
        return samples if ok == 1 else None

    samples = wait_for(reloaded)
    assert value(samples, "footgw_policy_rules") == rules - 1
