"""Signed audit checkpoints: written as the chain grows, and what they let verify catch."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import migrations
from gateway.audit.checkpoints import INVALID_HEAD, Checkpointer, CheckpointKey
from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.audit.verify import verify_rows
from gateway.db import audit_checkpoints, audit_events, create_db_engine
from gateway.types import EventType
from tests.support.server import Live, make_env, start_live
from tests.test_cli import run


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def chain(tmp_path):
    """An audit log and a checkpointer (every 3 events or 60 s of a fake clock)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrations.migrate(engine)
    store = AuditStore(engine)
    log = AuditLog(store)
    clock = Clock()
    checkpointer = Checkpointer(
        engine,
        CheckpointKey(tmp_path / "keys" / "cp.pem"),
        every_events=3,
        every_seconds=60,
        clock=clock,
    )
    runner = asyncio.Runner()

    def append(count: int) -> None:
        # The hook is called here rather than registered with log.on_commit: the log runs its
        # hooks after the append returns, and the test wants them done before it looks.
        for _ in range(count):
            sealed = runner.run(log.append(new_event(EventType.POLICY_RELOADED)))
            runner.run(checkpointer.on_commit([sealed]))

    yield store, checkpointer, clock, append, runner, tmp_path
    runner.run(log.close())
    runner.run(checkpointer.close())
    runner.close()
    engine.dispose()


def stored(store: AuditStore) -> list[int]:
    with store.engine.connect() as conn:
        return [r.seq for r in conn.execute(sa.select(audit_checkpoints.c.seq))]


def test_every_n_events_a_checkpoint_and_the_key_is_private(chain):
    store, checkpointer, _clock, append, _runner, root = chain
    append(7)
    assert stored(store) == [3, 6]
    key = root / "keys" / "cp.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    latest = checkpointer.latest_verified()
    assert latest is not None and latest.valid and latest.seq == 6
    assert verify_rows(store.iter_rows(), latest).ok


def test_after_t_seconds_the_next_commit_is_checkpointed(chain):
    store, _checkpointer, clock, append, _runner, _root = chain
    append(1)
    assert stored(store) == []
    clock.now += timedelta(seconds=61)
    append(1)
    assert stored(store) == [2]


def test_a_quiet_tail_is_covered_on_close(chain):
    store, checkpointer, _clock, append, runner, _root = chain
    append(4)
    assert stored(store) == [3]
    runner.run(checkpointer.close())
    assert stored(store) == [3, 4]


def test_a_cut_tail_fails_verify(chain):
    store, checkpointer, _clock, append, _runner, _root = chain
    append(6)
    with store.engine.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq > 4))
    result = verify_rows(store.iter_rows(), checkpointer.latest_verified())
    assert not result.ok and result.first_bad_seq == 5
    assert "checkpoint" in result.problem


@pytest.mark.parametrize("column", ["signature", "head_hash", "seq", "ts"])
def test_a_tampered_checkpoint_fails_verify_and_is_never_skipped(chain, column):
    store, checkpointer, _clock, append, _runner, _root = chain
    append(6)
    values = {
        "signature": base64.b64encode(b"\0" * 64).decode(),
        "head_hash": "f" * 64,
        "seq": 0,
        "ts": "2020-01-01T00:00:00.000000Z",
    }
    with store.engine.begin() as conn:
        conn.execute(
            audit_checkpoints.update()
            .where(audit_checkpoints.c.seq == 3)
            .values({column: values[column]})
        )
    latest = checkpointer.latest_verified()
    assert latest is not None and not latest.valid and latest.head_hash == INVALID_HEAD
    assert not verify_rows(store.iter_rows(), latest).ok


def test_a_checkpoint_from_another_key_fails(chain):
    store, _checkpointer, _clock, append, _runner, root = chain
    append(3)
    other = Checkpointer(store.engine, CheckpointKey(root / "other.pem"))
    missing = other.latest_verified()  # no key at all: nothing can be verified, so it fails
    assert missing is not None and not missing.valid and "no checkpoint key" in missing.problem
    other.key.private()  # now a key exists, but not the one that signed
    latest = other.latest_verified()
    assert latest is not None and not latest.valid and "unknown key" in latest.problem


def test_a_rotated_key_keeps_verifying_what_it_signed_once_retired(chain):
    store, checkpointer, _clock, append, _runner, root = chain
    append(3)
    old_public = checkpointer.key.private().public_key()
    rotated = Checkpointer(store.engine, CheckpointKey(root / "new.pem"))
    rotated.key.private()
    refused = rotated.latest_verified()
    assert refused is not None and not refused.valid and "unknown key" in refused.problem
    result = verify_rows(store.iter_rows(), refused)
    assert not result.ok and "unknown key" in result.problem  # the reason reaches verify
    trusting = Checkpointer(store.engine, CheckpointKey(root / "new.pem"), retired=[old_public])
    latest = trusting.latest_verified()
    assert latest is not None and latest.valid and latest.seq == 3
    assert verify_rows(store.iter_rows(), latest).ok


def test_checkpoints_are_logged_so_a_copy_leaves_the_database(chain):
    from structlog.testing import capture_logs

    _store, _checkpointer, _clock, append, _runner, _root = chain
    with capture_logs() as logs:
        append(3)
    [line] = [e for e in logs if e["event"] == "audit_checkpoint"]
    assert line["seq"] == 3 and line["signature"] and line["key_id"]


# --- end to end: the gateway writes checkpoints; the API and the CLI catch a cut tail ---------


@pytest.fixture
def live_every_event(tmp_path) -> Live:
    env = make_env(tmp_path, {"FOOTGW_CHECKPOINT_EVERY": "1"})
    live = start_live(env)
    yield live
    live.client.close()
    live.server.stop()


def make_events(live: Live, count: int) -> None:
    owner = live.env.auth("alice", "customer", customer_id="c1")
    for _ in range(count):
        assert live.client.get("/v1/footage/c1/cam", headers=owner).status_code in (200, 404)


def cli_env(root: Path) -> dict[str, str]:
    return {"FOOTGW_DATA_DIR": str(root), "FOOTGW_LOG_FORMAT": "json"}


def test_truncating_the_event_table_is_caught_by_the_api_and_the_cli(live_every_event):
    live = live_every_event
    make_events(live, 4)
    analyst = live.env.auth("ana", "security_analyst")
    intact = live.client.get("/v1/audit/verify", headers=analyst).json()
    assert intact["ok"] and intact["checkpoint"]["valid"]
    # The CLI finds the same key and checkpoints, passes the intact chain, and prints the
    # verify JSON's fields as the API does, checkpoint included (contract §9).
    printed = run("audit", "verify", env=cli_env(live.env.root))
    assert printed.returncode == 0
    body = json.loads(printed.stdout)
    assert body.keys() == intact.keys() and body["checkpoint"]["valid"]
    engine = create_db_engine(live.env.settings.database_url)
    with engine.begin() as conn:
        last = conn.execute(sa.select(sa.func.max(audit_events.c.seq))).scalar()
        conn.execute(audit_events.delete().where(audit_events.c.seq > last - 2))
    engine.dispose()
    cut = live.client.get("/v1/audit/verify", headers=analyst).json()
    assert cut["ok"] is False and cut["first_bad_seq"] == last - 1
    result = run("audit", "verify", env=cli_env(live.env.root))
    assert result.returncode == 1 and "NOT intact" in result.stderr


def test_a_forged_checkpoint_signature_is_caught_by_the_api_and_the_cli(live_every_event):
    live = live_every_event
    make_events(live, 2)
    engine = create_db_engine(live.env.settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            audit_checkpoints.update().values(signature=base64.b64encode(b"\1" * 64).decode())
        )
    engine.dispose()
    body = live.client.get(
        "/v1/audit/verify", headers=live.env.auth("ana", "security_analyst")
    ).json()
    assert body["ok"] is False and body["checkpoint"]["valid"] is False
    assert body["checkpoint"]["problem"] == "signature does not verify"
    assert run("audit", "verify", env=cli_env(live.env.root)).returncode == 1
