"""`footage-gateway demo --scenario browsing`: the replay runs, and the analyst can see it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.demo.browsing import AGENT, report, run_browsing
from gateway.devkeys import mint_dev_token
from gateway.settings import load_settings
from tests.test_cli import run


def dev_settings(root):
    return load_settings({"FOOTGW_DATA_DIR": str(root), "FOOTGW_DEV_MODE": "1"})


def test_the_sweep_is_flagged_at_5_suspended_at_10_and_refused_after(tmp_path):
    settings = dev_settings(tmp_path)
    token = mint_dev_token(settings.dev_key_file, sub=AGENT, roles=["support_agent"])
    analyst = mint_dev_token(settings.dev_key_file, sub="ana", roles=["security_analyst"])
    now = datetime.now(UTC)
    result = asyncio.run(run_browsing(settings, token, analyst, now))
    statuses = [step.status for step in result.steps]
    assert statuses == [200] * 10 + [403, 403]
    assert {step.code for step in result.steps[10:]} == {"principal_suspended"}
    first_browsing = next(
        i for i, s in enumerate(result.steps, 1) if "customer_browsing" in s.flags
    )
    assert first_browsing == 5
    assert result.principal["status"] == "suspended"
    [browsing] = [f for f in result.flags if f["rule"] == "customer_browsing"]
    assert len(browsing["event_ids"]) == 10
    text = report(result, "http://127.0.0.1:8080", token)
    assert " 5. cust-05: HTTP 200  <- flag raised: customer_browsing" in text
    assert "/v1/flags?status=open" in text and f"/v1/principals/{AGENT}" in text
    assert browsing["flag_id"] in text

    # A rerun on the same data dir starts over: reinstated, old flags resolved, same story.
    again = asyncio.run(run_browsing(settings, token, analyst, now))
    assert [step.status for step in again.steps] == statuses
    [new] = [f for f in again.flags if f["rule"] == "customer_browsing"]
    assert new["flag_id"] != browsing["flag_id"]


def test_the_demo_command_runs_the_scenario(tmp_path):
    env = {"FOOTGW_DATA_DIR": str(tmp_path / "var"), "FOOTGW_DEV_MODE": "1"}
    result = run("demo", "--scenario", "browsing", "--no-serve", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "11. cust-11: HTTP 403 principal_suspended" in result.stdout
    assert f"{AGENT} is now suspended" in result.stdout
    # The sweep's log lines go to stderr, never between the lines a newcomer pastes.
    assert "audit_event" not in result.stdout and "audit_event" in result.stderr
