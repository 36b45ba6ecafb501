"""The command line, run as a real process (`python -m gateway`)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa

from gateway import cli
from gateway.db import audit_events, create_db_engine
from gateway.types import Purpose, Role, Zone
from tests.support.server import free_port, make_env


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_a_bad_setting_stops_with_one_line_naming_the_key():
    result = run("migrate", env={"FOOTGW_DATABASE_URL": "mysql://nope"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "FOOTGW_DATABASE_URL" in lines[0]


def test_serve_without_any_key_source_names_the_key(tmp_path):
    result = run("serve", env={"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "FOOTGW_JWT_PUBLIC_KEY_FILE" in result.stderr


def test_token_needs_dev_mode_and_then_signs_with_the_dev_key(tmp_path):
    env = {"FOOTGW_DATA_DIR": str(tmp_path)}
    refused = run("token", "--sub", "x", "--role", "customer", env=env)
    assert refused.returncode == 2 and "FOOTGW_DEV_MODE" in refused.stderr
    made = run(
        "token",
        "--sub",
        "sam",
        "--role",
        "support_agent",
        "--ttl",
        "60",
        env={**env, "FOOTGW_DEV_MODE": "1"},
    )
    assert made.returncode == 0
    token = made.stdout.strip()
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "sam" and claims["roles"] == ["support_agent"]
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (
            ["--role", "support_agent", "--purpose", "customer_support", "--zone", "indoor"],
            1,
            "no_grant",
        ),
        (
            [
                "--role",
                "support_agent",
                "--purpose",
                "customer_support",
                "--zone",
                "indoor",
                "--grant",
            ],
            0,
            "allow",
        ),
        (
            [
                "--role",
                "support_agent",
                "--purpose",
                "customer_support",
                "--zone",
                "private",
                "--grant",
            ],
            1,
            "zone_restricted",
        ),
        (
            ["--role", "security_analyst", "--purpose", "customer_support", "--zone", "outdoor"],
            1,
            "deny: rule [security_analyst",
        ),
        (["--role", "legal", "--purpose", "legal_request", "--zone", "private"], 0, "allow"),
        (
            [
                "--role",
                "support_agent",
                "--purpose",
                "model_training",
                "--zone",
                "outdoor",
                "--grant",
            ],
            1,
            "deny: rule [*, model_training",
        ),
        (
            # Known terms no rule names (an unknown one is refused: test_startup_refusals.py).
            ["--role", "customer", "--purpose", "customer_support", "--zone", "outdoor"],
            1,
            "no rule matches",
        ),
    ],
)
def test_policy_check_prints_the_decision_and_the_rule(args, code, text):
    result = run("policy", "check", *args)
    assert result.returncode == code, result.stderr
    assert text in result.stdout


def test_audit_verify_and_export(tmp_path, live):
    clip = "20261127T101500Z.mp4"
    live.env.put_clip("c1", "front", clip, b"footage")
    for _ in range(3):
        live.client.get(
            f"/v1/footage/c1/front/{clip}",
            headers=live.env.auth("alice", "customer", customer_id="c1"),
        )
    env = {"FOOTGW_DATA_DIR": str(live.env.root)}
    ok = run("audit", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    exported = [json.loads(line) for line in run("audit", "export", env=env).stdout.splitlines()]
    assert [e["seq"] for e in exported] == list(range(1, len(exported) + 1))
    assert {e["type"] for e in exported} >= {"access.decision", "access.complete"}

    engine = create_db_engine(live.env.settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            audit_events.update().where(audit_events.c.seq == 2).values(principal="mallory")
        )
    engine.dispose()
    bad = run("audit", "verify", env=env)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_seq"] == 2
    assert "seq 2" in bad.stderr


def test_migrate_is_idempotent(tmp_path):
    env = {"FOOTGW_DATA_DIR": str(tmp_path)}
    first = run("migrate", env=env)
    applied = "applied migrations: 0001, 0002, 0003, 0004, 0005, 0006, 0007, 0008"
    assert first.returncode == 0 and applied in first.stdout
    again = run("migrate", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    assert sa.inspect(engine).has_table("audit_events")
    engine.dispose()


def test_migrate_refuses_a_schema_from_a_newer_gateway_with_exit_2(tmp_path):
    env = {"FOOTGW_DATA_DIR": str(tmp_path)}
    assert run("migrate", env=env).returncode == 0
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    refused = run("migrate", env=env)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "9999" in line and "newer gateway" in line


def test_serve_refuses_an_unmigrated_database_in_one_line_naming_migrate(tmp_path):
    env = make_env(tmp_path).env
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run("serve", env={**env, "FOOTGW_DATABASE_URL": empty})
    assert result.returncode == 2
    [line] = (result.stdout + result.stderr).strip().splitlines()
    assert "run `footage-gateway migrate`" in line


def test_retention_enforce_lists_then_deletes_with_audit_events(tmp_path):
    env = make_env(tmp_path, {"FOOTGW_RETENTION_DAYS": "30"})
    old = env.put_clip("c1", "cam", "20200101T000000Z.mp4", b"old")
    new = env.put_clip("c1", "cam", "20991231T000000Z.mp4", b"new")
    base = {"FOOTGW_DATA_DIR": str(tmp_path), "FOOTGW_RETENTION_DAYS": "30"}
    listed = run("retention", "enforce", env=base)
    assert listed.returncode == 0, listed.stderr
    assert f"expired {old.key}" in listed.stdout and new.key not in listed.stdout
    footage = tmp_path / "footage"
    assert (footage / old.key).exists()
    applied = run("retention", "enforce", "--apply", env=base)
    assert f"deleted {old.key}" in applied.stdout
    assert not (footage / old.key).exists() and (footage / new.key).exists()
    engine = create_db_engine(env.settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events.c.body)).scalars().all()
    engine.dispose()
    events = [json.loads(r) for r in rows]
    # Requested before storage is touched, deleted only once it is gone, the two joined.
    assert [(e["type"], e["clip_id"]) for e in events] == [
        ("footage.delete_requested", old.clip_id),
        ("footage.deleted", old.clip_id),
    ]
    requested, deleted = events
    assert deleted["detail"]["requested_event_id"] == requested["event_id"]
    assert deleted["detail"]["removed"]
    assert run("audit", "verify", env=base).returncode == 0


def test_retention_without_a_setting_names_it(tmp_path):
    result = run("retention", "enforce", env={"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "FOOTGW_RETENTION_DAYS" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_is_read_before_or_after_the_command(tmp_path, where):
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    flag = ["--config", str(config)]
    args = [*flag, "migrate"] if where == "before" else ["migrate", *flag]
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "gateway.db").exists()
    assert not (tmp_path / "var").exists()  # the default data dir was never used


def test_config_after_a_nested_command_too(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text("retention_days = 30\ndev_mode = true\n")
    result = run(
        "retention", "enforce", "--config", str(config), env={"FOOTGW_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    missing = run("retention", "enforce", env={"FOOTGW_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2 and "FOOTGW_RETENTION_DAYS" in missing.stderr


def test_config_between_the_words_of_a_nested_command(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text("retention_days = 30\ndev_mode = true\n")
    env = {"FOOTGW_DATA_DIR": str(tmp_path)}
    result = run("retention", "--config", str(config), "enforce", env=env)
    assert result.returncode == 0, result.stderr
    # A later --config wins over an earlier one, wherever each stands.
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    later = run("retention", "--config", str(config), "enforce", "--config", str(empty), env=env)
    assert later.returncode == 2 and "FOOTGW_RETENTION_DAYS" in later.stderr


def _every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _every_parser(child)


def test_help_describes_every_option_and_every_command():
    for parser in _every_parser(cli._parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{parser.prog} {choice.dest}"
            else:
                assert action.help, f"{parser.prog}: {action.option_strings}"


def test_help_lists_the_roles_purposes_and_zones():
    result = run("policy", "check", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for value in [*Role, *Purpose, *Zone]:
        assert value in text, value
    token = " ".join(run("token", "--help").stdout.split())
    assert all(role in token for role in Role)


def test_serve_logs_where_it_listens_and_warns_in_dev_mode(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    env.update(
        FOOTGW_DATA_DIR=str(tmp_path),
        FOOTGW_DEV_MODE="1",
        FOOTGW_PORT=str(port),
        FOOTGW_LOG_FORMAT="json",
    )
    records = []
    with subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--migrate"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:  # bounded by pytest's timeout if it never listens
                records.append(json.loads(line))
                if records[-1]["event"] == "listening":
                    break
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    by_event = {r["event"]: r for r in records}
    assert by_event["dev_mode_enabled"]["level"] == "warning"
    assert "FOOTGW_DEV_MODE=1" in by_event["dev_mode_enabled"]["message"]
    assert by_event["listening"]["url"] == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("command", [("audit", "verify"), ("audit", "export")])
def test_audit_tools_on_an_unmigrated_database_say_migrate_in_one_line(tmp_path, command):
    # Exit 1 from `audit verify` means "tampered": a missing schema must not read as that.
    result = run(*command, env={"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "run `footage-gateway migrate`" in line
    assert result.stdout == ""


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_token_refuses_a_ttl_that_is_not_a_positive_number_as_a_usage_error(tmp_path, ttl):
    env = {"FOOTGW_DATA_DIR": str(tmp_path), "FOOTGW_DEV_MODE": "1"}
    result = run("token", "--sub", "x", "--role", "legal", "--ttl", ttl, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--ttl: expected a positive number of seconds" in result.stderr


@pytest.mark.parametrize("sub", ["", "   "])
def test_token_refuses_a_blank_sub_as_a_usage_error(tmp_path, sub):
    env = {"FOOTGW_DATA_DIR": str(tmp_path), "FOOTGW_DEV_MODE": "1"}
    result = run("token", "--sub", sub, "--role", "legal", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "--sub: expected a user or staff id" in result.stderr


def test_token_without_dev_mode_names_the_other_way_to_sign(tmp_path):
    result = run("token", "--sub", "x", "--role", "legal", env={"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "--private-key" in result.stderr


def test_policy_check_refuses_an_unknown_zone_instead_of_matching_the_star_rows():
    # legal's rows have zone `*`: a typo'd zone used to print "allow" and exit 0.
    result = run(
        "policy", "check", "--role", "legal", "--purpose", "legal_request", "--zone", "attic"
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "--zone: invalid choice: 'attic'" in result.stderr


@pytest.mark.parametrize("command", [("demo",), ("serve",)])
def test_a_port_in_use_is_one_line_naming_footgw_port_before_any_curl_line(tmp_path, command):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"FOOTGW_DATA_DIR": str(tmp_path), "FOOTGW_DEV_MODE": "1", "FOOTGW_PORT": str(port)}
        result = run(*command, env=env)
    assert result.returncode == 2
    assert result.stdout == ""  # no curl lines that another server would answer
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("footage-gateway: configuration error: FOOTGW_PORT:")
    assert f"127.0.0.1:{port}" in line


def test_serve_help_names_the_key_sources_it_needs():
    text = " ".join(run("serve", "--help").stdout.split())
    for key in ("FOOTGW_JWT_PUBLIC_KEY_FILE", "FOOTGW_JWT_JWKS_URL", "FOOTGW_DEV_MODE=1"):
        assert key in text, key
