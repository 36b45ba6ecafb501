"""The outbox across replicas and restarts: two live gateways on one PostgreSQL post each
notification once; a `footage-gateway serve` killed with SIGKILL leaves nothing undelivered
after a restart.

Real subprocesses, a real receiver that verifies every Standard Webhooks signature
(tests/support/webhooks.py); waits poll conditions with deadlines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.audit.atomic import commit_with_event
from gateway.audit.events import new_event
from gateway.db import audit_events, create_db_engine, notifications
from gateway.notify.outbox import notify
from gateway.types import EventType, Zone
from tests.support.cluster import fresh_schema, require_postgres
from tests.support.faults import GatewayProcess as KillableGateway
from tests.support.faults import verify_chain, wait_until
from tests.support.server import Live, make_env, start_live
from tests.support.webhooks import WebhookReceiver, new_secret
from tests.test_detection_http import clip_at

FAST = {
    "FOOTGW_NOTIFY_POLL": "0.05",
    "FOOTGW_NOTIFY_BACKOFF": "0.05",
    "FOOTGW_NOTIFY_BACKOFF_MAX": "0.2",
    "FOOTGW_NOTIFY_TIMEOUT": "1",
    "FOOTGW_NOTIFY_EXPIRY_WARNING": "0",
}
QUEUED = 60


def queue_notifications(database_url: str, count: int) -> None:
    """`count` notifications, each committed with an audit event (as a state change would)."""
    engine = create_db_engine(database_url)
    try:
        for n in range(count):

            def change(conn: Any, n: int = n) -> int:
                notify(conn, f"cust{n % 5}", "test.queued", {"n": n})
                return n

            commit_with_event(
                engine,
                change,
                lambda n: new_event(EventType.GRANT_CREATED, principal="test", detail={"n": n}),
                lock_timeout=5.0,
            )
    finally:
        engine.dispose()


def outbox_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(notifications)).mappings()]
    finally:
        engine.dispose()


def delivered_events(database_url: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return [
                str(body)
                for (body,) in conn.execute(
                    sa.select(audit_events.c.body).where(
                        audit_events.c.type == "notification.delivered"
                    )
                )
            ]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_replicas_on_one_database_post_each_notification_once(tmp_path: Path) -> None:
    secret = new_secret()
    with (
        WebhookReceiver(secret) as receiver,
        fresh_schema(require_postgres()) as database_url,
    ):
        env = make_env(
            tmp_path,
            {
                "FOOTGW_DATABASE_URL": database_url,
                "FOOTGW_NOTIFY_WEBHOOK": receiver.url,
                "FOOTGW_NOTIFY_SECRET": secret,
                **FAST,
            },
        )
        env.set_zone("c1", "cam", Zone.OUTDOOR)
        # Two live gateways (each its own app, loop, pool and worker id) on one database.
        replicas = [start_live(env), start_live(env)]
        try:
            # Both replicas poll the same outbox while rows arrive in a burst.
            queue_notifications(database_url, QUEUED)
            wait_until(lambda: sum(receiver.accepted_ids().values()) >= QUEUED, 60, "every post")
            wait_until(lambda: len(delivered_events(database_url)) >= QUEUED, 30, "every event")
            per_replica = [delivered_by(replica) for replica in replicas]
        finally:
            for replica in replicas:
                replica.close()
        rows = outbox_rows(database_url)
        assert len(rows) == QUEUED and all(r["delivered_at"] for r in rows)
        counts = receiver.accepted_ids()
        assert set(counts) == {r["id"] for r in rows}
        assert max(counts.values()) == 1, "a notification was posted twice"
        assert len(delivered_events(database_url)) == QUEUED
        assert receiver.rejected == []
        assert sum(per_replica) == QUEUED, per_replica  # each replica counts what it delivered


def delivered_by(live: Live) -> int:
    metric = live.services.metrics.notifications_delivered.labels("customer")
    return int(metric._value.get())


def view_break_glass(gateway: KillableGateway, env: Any) -> None:
    clip = clip_at(3)
    headers = env.auth(
        "lee",
        "trust_safety",
        **{"X-Access-Purpose": "emergency", "X-Access-Justification": "INC-5"},
    )
    r = httpx.get(f"{gateway.url}/v1/footage/c1/cam/{clip}", headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def killable_env(tmp_path: Path, receiver: WebhookReceiver, secret: str) -> Any:
    env = make_env(
        tmp_path, {"FOOTGW_NOTIFY_WEBHOOK": receiver.url, "FOOTGW_NOTIFY_SECRET": secret, **FAST}
    )
    env.set_zone("c1", "cam", Zone.OUTDOOR)
    env.put_clip("c1", "cam", clip_at(3), b"x" * 100)
    return env


def test_a_notification_pending_at_sigkill_is_delivered_after_restart(tmp_path: Path) -> None:
    secret = new_secret()
    with WebhookReceiver(secret, status=503) as receiver:
        env = killable_env(tmp_path, receiver, secret)
        first = KillableGateway(env.env, tmp_path / "first.log").start()
        try:
            view_break_glass(first, env)
            wait_until(lambda: len(receiver.received) >= 2, 20, "a retried post")
        finally:
            first.kill()
        assert receiver.accepted() == []
        receiver.status = 204
        second = KillableGateway(env.env, tmp_path / "second.log").start()
        try:
            wait_until(lambda: receiver.accepted(), 20, "the post after the restart")
        finally:
            second.stop()
        [message] = receiver.accepted()
        assert message["body"]["type"] == "access.emergency"
        assert {m["id"] for m in receiver.received} == {message["id"]}  # one webhook-id throughout
        [row] = outbox_rows(env.settings.database_url)
        assert row["delivered_at"] and row["attempts"] >= 2
        assert verify_chain(env.settings.database_url).ok


def test_a_post_cut_by_sigkill_is_sent_again_with_the_same_webhook_id(tmp_path: Path) -> None:
    """Killed while its post was in flight (the claim held): after the claim lapses the
    restarted gateway posts it again. At least once; the receiver dedupes by webhook-id."""
    secret = new_secret()
    with WebhookReceiver(secret, hang=lambda m: len(m) > 0, hang_seconds=30) as receiver:
        env = killable_env(tmp_path, receiver, secret)
        first = KillableGateway(env.env, tmp_path / "first.log").start()
        hung: list[Any] = []
        try:
            view_break_glass(first, env)
            wait_until(lambda: _claimed(env.settings.database_url, hung), 20, "a claimed row")
        finally:
            first.kill()
        receiver.hang = None
        receiver.release.set()  # the dead process's post is answered into a closed socket
        second = KillableGateway(env.env, tmp_path / "second.log").start()
        try:
            wait_until(lambda: _delivered(env.settings.database_url), 30, "redelivery")
        finally:
            second.stop()
        # The cut post and at least one after the restart (more if one of those timed out
        # under load): every one the same message, which the receiver dedupes. The cut post
        # is recorded by the receiver's own thread once released, so wait for it.
        wait_until(lambda: len(receiver.received) >= 2, 10, "the cut post recorded")
        ids = {m["id"] for m in receiver.received}
        assert ids == {hung[0]["id"]}
        assert verify_chain(env.settings.database_url).ok


def _claimed(database_url: str, into: list[Any]) -> bool:
    rows = [r for r in outbox_rows(database_url) if r["claimed_by"]]
    into[:] = rows
    return bool(rows)


def _delivered(database_url: str) -> bool:
    return any(r["delivered_at"] for r in outbox_rows(database_url))
