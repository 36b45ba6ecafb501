"""Customer notifications end to end: a live gateway (uvicorn, SQLite) posts signed webhooks
from its outbox to a real local receiver that verifies every signature (tests/support/webhooks.py).

Fast delivery knobs (poll, backoff, timeout) come from settings; every wait polls a condition
with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import notifications
from gateway.types import Zone
from tests.support.legal import approve_legal
from tests.support.server import Live, wait_for
from tests.support.webhooks import WebhookReceiver, new_secret
from tests.test_detection_http import ALWAYS_WORKING, YESTERDAY, clip_at, start

FAST = {
    "FOOTGW_NOTIFY_POLL": "0.05",
    "FOOTGW_NOTIFY_BACKOFF": "0.05",
    "FOOTGW_NOTIFY_BACKOFF_MAX": "0.2",
    "FOOTGW_NOTIFY_TIMEOUT": "1",
    "FOOTGW_NOTIFY_EXPIRY_WARNING": "0",
}


@pytest.fixture
def gateway(tmp_path: Any) -> Iterator[Any]:
    made: list[Live] = []

    def make(receiver: WebhookReceiver | None, secret: str | None, **env: str) -> Live:
        extra = dict(FAST)
        if receiver is not None:
            extra["FOOTGW_NOTIFY_WEBHOOK"] = receiver.url
        if secret is not None:
            extra["FOOTGW_NOTIFY_SECRET"] = secret
        made.append(start(tmp_path, ALWAYS_WORKING, **{**extra, **env}))
        return made[-1]

    yield make
    for live in made:
        live.close()


def grant(live: Live, ticket: str = "T-100", **extra: Any) -> str:
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["*"],
        "footage_from": (YESTERDAY - timedelta(hours=2)).isoformat(),
        "footage_until": (YESTERDAY + timedelta(hours=2)).isoformat(),
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "ticket": ticket,
        **extra,
    }
    r = live.client.post("/v1/grants", json=body, headers=owner(live))
    assert r.status_code == 201, r.text
    return str(r.json()["grant_id"])


def owner(live: Live, customer: str = "c1") -> dict[str, str]:
    return live.env.auth(f"owner-{customer}", "customer", customer_id=customer)


def view(
    live: Live,
    minute: int,
    *,
    purpose: str = "customer_support",
    sub: str = "sam",
    role: str = "support_agent",
    why: str = "T-100 camera offline",
) -> httpx.Response:
    clip = clip_at(minute)
    live.env.put_clip("c1", "cam", clip, b"x" * 10)
    headers = live.env.auth(
        sub, role, **{"X-Access-Purpose": purpose, "X-Access-Justification": why}
    )
    return live.client.get(f"/v1/footage/c1/cam/{clip}", headers=headers)


def rows(live: Live) -> list[dict[str, Any]]:
    with live.services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(notifications)).mappings()]


def audit_of(live: Live, kind: str) -> list[dict[str, Any]]:
    r = live.client.get(
        "/v1/audit/events", params={"type": kind}, headers=live.env.auth("ana", "security_analyst")
    )
    assert r.status_code == 200, r.text
    return list(r.json()["events"])


def test_first_use_of_a_grant_is_posted_signed_once(gateway):
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        grant_id = grant(live)
        first = view(live, 1)
        assert first.status_code == 200, first.text
        for minute in (2, 3):
            assert view(live, minute).status_code == 200
        [message] = wait_for(lambda: receiver.of_type("grant.first_use"))
        body = message["body"]
        assert body["data"]["grant_id"] == grant_id and body["data"]["customer_id"] == "c1"
        assert body["data"]["event_id"] == first.headers["x-audit-event-id"]
        assert body["data"]["principal"] == "sam"
        assert message["id"] == body["id"] and message["id"].startswith("msg_")
        assert receiver.rejected == []
        # Delivered and recorded: one audit event, and the row settled.
        wait_for(lambda: audit_of(live, "notification.delivered"))
        [event] = audit_of(live, "notification.delivered")
        assert event["detail"]["notification_id"] == message["id"]
        assert event["customer_id"] == "c1" and event["detail"]["attempts"] == 1
    [row] = [r for r in rows(live) if r["kind"] == "grant.first_use"]
    assert row["delivered_at"] and row["next_attempt_at"] is None and row["claimed_by"] is None
    assert receiver.accepted_ids()[message["id"]] == 1


def test_a_denied_view_and_the_owners_own_view_notify_nobody(gateway):
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        assert view(live, 1).status_code == 403  # no grant
        clip = clip_at(1)
        assert live.client.get(f"/v1/footage/c1/cam/{clip}", headers=owner(live)).status_code == 200
    assert rows(live) == []


def test_break_glass_views_notify_once_per_clip(gateway):
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        for _ in range(3):  # a player's range requests: one clip, one notification
            r = view(live, 5, purpose="emergency", sub="lee", role="trust_safety", why="INC-9 fire")
            assert r.status_code == 200, r.text
        [emergency] = wait_for(lambda: receiver.of_type("access.emergency"))
        assert emergency["body"]["data"]["principal"] == "lee"
        assert emergency["body"]["data"]["justification"] == "INC-9 fire"
        assert emergency["body"]["data"]["clip_id"] == clip_at(5)
    assert [r["kind"] for r in rows(live)] == ["access.emergency"]


def test_legal_views_notify_once_per_clip_after_the_two_person_approval(gateway):
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        before = view(live, 6, purpose="legal_request", sub="lou", role="legal", why="SUBPOENA-9")
        assert before.status_code == 403 and before.json()["error"]["code"] == "approval_required"
        approve_legal(live.client, live.url, live.env.auth, "lou", ["c1"], "SUBPOENA-9")
        for _ in range(3):  # a player's range requests: one clip, one notification
            r = view(live, 6, purpose="legal_request", sub="lou", role="legal", why="SUBPOENA-9")
            assert r.status_code == 200, r.text
        [legal] = wait_for(lambda: receiver.of_type("access.legal_request"))
        assert legal["body"]["data"]["principal"] == "lou"
        assert legal["body"]["data"]["justification"] == "SUBPOENA-9"
        assert legal["body"]["data"]["clip_id"] == clip_at(6)
    kinds = [r["kind"] for r in rows(live)]
    assert kinds.count("access.legal_request") == 1, kinds


def test_a_failing_receiver_is_retried_until_it_accepts(gateway):
    secret = new_secret()
    with WebhookReceiver(secret, fail_first=2) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        grant(live)
        assert view(live, 1).status_code == 200
        [message] = wait_for(lambda: receiver.of_type("grant.first_use"))
        statuses = [status for i, status in receiver.answered if i == message["id"]]
        assert statuses == [500, 500, 204]
        wait_for(lambda: audit_of(live, "notification.delivered"))
    assert audit_of(live, "notification.failed") == []  # retries are not audit events
    metrics = live.client.get("/metrics").text
    assert 'footgw_notification_attempts_failed_total{destination="customer"} 2.0' in metrics
    assert 'footgw_notifications_delivered_total{destination="customer"} 1.0' in metrics


def test_a_hanging_receiver_times_out_and_does_not_hold_up_the_rest(gateway):
    secret = new_secret()
    first_emergency: list[str] = []

    def hang_once(message: dict[str, Any]) -> bool:
        # Hold the first emergency notification's first post; answer everything else.
        if message["body"].get("type") != "access.emergency" or first_emergency:
            return False
        first_emergency.append(message["id"])
        return True

    with WebhookReceiver(secret, hang=hang_once, hang_seconds=20) as receiver:
        live = gateway(receiver, secret)
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        r = view(live, 5, purpose="emergency", sub="lee", role="trust_safety", why="INC-9 fire")
        assert r.status_code == 200  # the view never waits on a webhook
        wait_for(lambda: first_emergency)
        # While that post hangs, another notification is delivered.
        grant(live)
        assert view(live, 1).status_code == 200
        wait_for(lambda: receiver.of_type("grant.first_use"))
        assert not receiver.release.is_set()
        # The hung attempt times out (FOOTGW_NOTIFY_TIMEOUT=1) and is retried: delivered.
        [emergency] = wait_for(lambda: receiver.of_type("access.emergency"), timeout=15)
        assert emergency["id"] == first_emergency[0]
        receiver.release.set()
    [row] = [r for r in rows(live) if r["kind"] == "access.emergency"]
    assert row["attempts"] == 2 and "Timeout" in row["last_error"]


def test_giving_up_is_one_failed_event_and_visible(gateway):
    secret = new_secret()
    with WebhookReceiver(secret, status=500) as receiver:
        live = gateway(receiver, secret, FOOTGW_NOTIFY_MAX_ATTEMPTS="3")
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        grant(live)
        assert view(live, 1).status_code == 200
        [event] = wait_for(lambda: audit_of(live, "notification.failed"))
        assert event["detail"]["attempts"] == 3 and event["detail"]["error"] == "HTTP 500"
        assert len(receiver.received) == 3
    listed = live.client.get("/v1/me/notifications", headers=owner(live)).json()
    assert [n["state"] for n in listed["notifications"]] == ["failed"]
    metrics = live.client.get("/metrics").text
    assert 'footgw_notifications_given_up_total{destination="customer"} 1.0' in metrics


def test_backlog_is_a_readiness_detail_never_a_failed_check(gateway):
    secret = new_secret()
    with WebhookReceiver(secret, status=503) as receiver:
        live = gateway(receiver, secret, FOOTGW_NOTIFY_BACKOFF="60", FOOTGW_NOTIFY_BACKOFF_MAX="60")
        live.env.set_zone("c1", "cam", Zone.OUTDOOR)
        grant(live)
        assert view(live, 1).status_code == 200
        wait_for(lambda: receiver.received)

        def detail() -> Any:
            body = live.client.get("/readyz").json()
            waiting = body["detail"]["notifications"]
            return body if waiting["backlog"] == 1 and waiting["last_error"] else None

        body = wait_for(detail)
        assert body["ready"] is True and "notifications" not in body["checks"]
        assert body["detail"]["notifications"]["last_error"] == "HTTP 503"
        metrics = live.client.get("/metrics").text
        assert 'footgw_outbox_backlog{destination="customer"} 1.0' in metrics
        assert "footgw_outbox_oldest_pending_seconds" in metrics


def test_a_grant_about_to_expire_is_warned_once(gateway):
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        live = gateway(receiver, secret, FOOTGW_NOTIFY_EXPIRY_WARNING="7200")
        soon = grant(live, "T-7", expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
        later = grant(live, "T-8", expires_at=(datetime.now(UTC) + timedelta(hours=5)).isoformat())
        [message] = wait_for(lambda: receiver.of_type("grant.expiring"))
        assert message["body"]["data"]["grant_id"] == soon
        # Many more sweeps: still one warning, and none for the grant that ends later.
        wait_for(lambda: live.services.deliverer.status["backlog"] == 0)
        assert live.client.get("/readyz").status_code == 200
    warned = [r for r in rows(live) if r["kind"] == "grant.expiring"]
    assert [r["dedupe_key"] for r in warned] == [f"grant.expiring:{soon}"]
    assert later not in str(warned)


def test_without_a_webhook_notifications_are_listed_but_never_sent(gateway):
    live = gateway(None, None)
    live.env.set_zone("c1", "cam", Zone.OUTDOOR)
    grant(live)
    assert view(live, 1).status_code == 200

    def settled() -> Any:
        found = live.client.get("/v1/me/notifications", headers=owner(live)).json()
        return found if found["notifications"][0]["state"] == "not_sent" else None

    listed = wait_for(settled)
    assert listed["notifications"][0]["kind"] == "grant.first_use"
    assert live.client.get("/readyz").json()["detail"]["notifications"]["backlog"] == 0


def test_customers_see_only_their_own_notifications_newest_first_and_paged(gateway):
    live = gateway(None, None)
    live.env.set_zone("c1", "cam", Zone.OUTDOOR)
    for n in range(3):
        r = view(live, 10 + n, purpose="emergency", sub="lee", role="trust_safety", why="INC-1")
        assert r.status_code == 200
    page = live.client.get("/v1/me/notifications?limit=2", headers=owner(live)).json()
    clips = [n["data"]["clip_id"] for n in page["notifications"]]
    assert clips == [clip_at(12), clip_at(11)]
    rest = live.client.get(
        f"/v1/me/notifications?limit=2&before_seq={page['next_before_seq']}", headers=owner(live)
    ).json()
    assert [n["data"]["clip_id"] for n in rest["notifications"]] == [clip_at(10)]
    assert rest["next_before_seq"] is None
    other = live.client.get("/v1/me/notifications", headers=owner(live, "c2")).json()
    assert other["notifications"] == []
    staff = live.env.auth("sam", "support_agent")
    assert live.client.get("/v1/me/notifications", headers=staff).status_code == 403
    assert live.client.get("/v1/me/notifications").status_code == 401
