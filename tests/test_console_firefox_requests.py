"""The customer's inbox in Firefox too: Debian's firefox-esr over WebDriver BiDi.

A smoke check in the second engine (tests/test_console_requests.py drives the whole loop in
Chromium): the count beside Inbox, a request with a hostile reason shown as text, narrowing
to one camera and approving; the grant made has only that camera.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.types import Zone
from tests.support.browser import Firefox, no_firefox_reason
from tests.support.server import make_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(no_firefox_reason() is not None, reason=str(no_firefox_reason())),
]

CLIP = "20261127T101500Z.mp4"
HOSTILE = "<img src=x onerror=window.__xss=1>"
CARD = "document.querySelector('article.request')"


@pytest.fixture
def gateway_env(tmp_path):
    """As `make run` serves it: dev mode, the only place the console takes `#token=` links."""
    return make_env(tmp_path, dev_mode=True)


def test_the_customer_inbox_works_in_firefox(live, tmp_path):
    for camera in ("front", "garden"):
        live.env.put_clip("c1", camera, CLIP, b"\x00" * 4096)
        live.env.set_zone("c1", camera, Zone.OUTDOOR)
    now = datetime.now(UTC)
    body = {
        "customer_id": "c1",
        "cameras": ["front", "garden"],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "purpose": "customer_support",
        "ticket": "T-77",
        "reason": f"doorbell offline {HOSTILE}",
    }
    staff = {"Authorization": f"Bearer {live.env.token('sam@support', 'support_agent')}"}
    made = live.client.post("/v1/access-requests", json=body, headers=staff)
    assert made.status_code == 201, made.text
    alice = live.env.token("alice", "customer", customer_id="c1", ttl=600)
    asyncio.run(drive(live.url, tmp_path, alice))
    got = live.client.get(f"/v1/access-requests/{made.json()['request_id']}", headers=staff)
    assert got.json()["state"] == "approved"
    grants = live.client.get("/v1/grants", headers=staff).json()["grants"]
    assert [g["cameras"] for g in grants] == [["front"]]


async def drive(base: str, profile, alice: str) -> None:
    async with Firefox(profile) as ff:
        await ff.goto(f"{base}/console/#token={alice}&view=/inbox")
        await ff.wait_for(f"{CARD} !== null")
        await ff.wait_for(
            "document.querySelector(\"#nav a[href='#/inbox'] .count\")?.textContent === '1'"
        )
        text = await ff.evaluate(f"{CARD}.innerText")
        assert f"doorbell offline {HOSTILE}" in text and "T-77" in text
        assert await ff.evaluate("typeof window.__xss") == "undefined"
        assert await ff.evaluate("document.querySelectorAll('main img').length") == 0

        await ff.evaluate(f"{CARD}.querySelector('input[value=garden]').click()")
        await ff.evaluate(f"{CARD}.querySelector('.narrow-form button[type=submit]').click()")
        await ff.wait_for(
            "document.querySelector('main').innerText.includes('Nobody is waiting for your')"
        )
        await ff.wait_for("document.querySelector(\"#nav a[href='#/inbox'] .count\") === null")
