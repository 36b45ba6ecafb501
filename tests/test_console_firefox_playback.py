"""The console plays footage in Firefox too: Debian's firefox-esr over WebDriver BiDi.

Same checks as tests/test_console_playback.py in the second engine (firefox-esr decodes H.264
with the system's libavcodec, which `make browser` installs with ffmpeg): a customer plays her
clip from the clip list; an agent declares a purpose at the desk and plays under a grant; the
customer revokes the grant and the agent's next request is refused.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.seeding import clip_bytes
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.browser import Firefox, no_firefox_reason
from tests.support.server import GatewayEnv, Live, make_env
from tests.support.video import (
    HAS_DATA,
    LOOPS,
    PLAY_MUTED,
    SEEK_UNTIL_REFUSED,
    VIDEO,
    make_long_clip,
    playing_from,
    seek_to,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(no_firefox_reason() is not None, reason=str(no_firefox_reason())),
]

AGENT = "sam@support"
CUSTOMER = "cust-a"
CAMERA = "front-door"
TICKET = "TICKET-77"
TIMEOUT = 20.0  # a second engine on a loaded machine: generous deadlines, never sleeps


@pytest.fixture
def gateway_env(tmp_path: Path) -> GatewayEnv:
    """As `make run` serves it: dev mode, the only place the console takes `#token=` links."""
    return make_env(tmp_path, dev_mode=True)


def recorded(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime(RECORDED_AT_FORMAT) + ".mp4"


def click(label: str) -> str:
    """JS: click the button with this accessible label (aria-label or its text)."""
    name = json.dumps(label)
    return (
        "(() => { const b = [...document.querySelectorAll('button')].find("
        f"(b) => (b.getAttribute('aria-label') || b.textContent) === {name});"
        " if (!b || b.disabled) return false; b.click(); return true; })()"
    )


async def assert_plays(ff: Firefox, base: str, duration: float) -> None:
    await ff.wait_for(HAS_DATA, TIMEOUT)
    assert (await ff.evaluate(f"{VIDEO}.currentSrc")).startswith(f"{base}/v1/play/")
    assert await ff.evaluate(PLAY_MUTED)
    await ff.wait_for(playing_from(0), TIMEOUT)
    assert await ff.evaluate(f"{VIDEO}.duration") == pytest.approx(duration, abs=0.2)
    await ff.evaluate(seek_to(duration / 2))
    await ff.wait_for(playing_from(duration / 2), TIMEOUT)
    assert await ff.evaluate(f"{VIDEO}.error === null")


def test_firefox_plays_for_the_customer_and_for_an_agent_until_revoked(
    live: Live, tmp_path: Path
) -> None:
    short, long = recorded(3), recorded(2)
    live.env.put_clip(CUSTOMER, CAMERA, short, clip_bytes())
    live.env.put_clip(CUSTOMER, CAMERA, long, make_long_clip(tmp_path))
    live.env.set_zone(CUSTOMER, CAMERA, Zone.OUTDOOR)
    alice = live.env.token("alice", "customer", customer_id=CUSTOMER, ttl=3600)
    now = datetime.now(UTC)
    body = {
        "grantee": AGENT,
        "purpose": "customer_support",
        "cameras": [CAMERA],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": TICKET,
        "include_private": False,
    }
    auth = {"Authorization": f"Bearer {alice}"}
    given = live.client.post("/v1/grants", json=body, headers=auth).json()
    agent = live.env.token(AGENT, "support_agent", ttl=3600)

    def revoke() -> None:
        r = live.client.delete(f"/v1/grants/{given['grant_id']}", headers=auth)
        assert r.status_code in (200, 204), r.text

    (tmp_path / "profile").mkdir()
    scene = (live.url, tmp_path / "profile", alice, agent, short, long, given, revoke)
    asyncio.run(drive(*scene))


async def drive(
    base: str,
    profile: Path,
    alice: str,
    agent: str,
    short: str,
    long: str,
    given: dict[str, Any],
    revoke: Any,
) -> None:
    async with Firefox(profile) as ff:
        # The customer plays her clip from the clip list.
        await ff.goto(f"{base}/console/#token={alice}&view=/cameras")
        assert await ff.wait_for(click("Show clips"), TIMEOUT)
        assert await ff.wait_for(click(f"Play clip {short}"), TIMEOUT)
        await assert_plays(ff, base, 10.0)
        assert await ff.wait_for(click("Stop"), TIMEOUT)
        await ff.wait_for("document.querySelector('.player video') === null", TIMEOUT)

        # The agent, in a fresh session of the tab (as in a new tab).
        await ff.evaluate("sessionStorage.clear()")
        await ff.goto("about:blank")
        await ff.goto(f"{base}/console/#token={agent}&view=/desk")
        await ff.wait_for("document.querySelector('form[aria-labelledby=purpose-title]')")
        await ff.evaluate(
            "(() => { const f = document.querySelector('form[aria-labelledby=purpose-title]');"
            f" f.querySelector('input[name=justification]').value = {json.dumps(TICKET)};"
            " f.requestSubmit(); return true; })()"
        )
        await ff.wait_for("document.querySelector('.declared') !== null", TIMEOUT)
        assert await ff.wait_for(click(f"Open {CUSTOMER}'s footage (ticket {TICKET})"), TIMEOUT)
        assert await ff.wait_for(click(f"Play clip {long}"), TIMEOUT)
        await assert_plays(ff, base, 10.0 * LOOPS)
        shown = await ff.evaluate("document.querySelector('.player').innerText")
        assert given["grant_id"] in shown and "Plays under grant" in shown
        assert await ff.evaluate("localStorage.length") == 0

        # The customer revokes; seeking on into parts not fetched yet, the agent's next request
        # is refused (within the replica's one-second liveness cache) and the page says why.
        revoke()
        await ff.wait_for(SEEK_UNTIL_REFUSED, TIMEOUT)
        code = await ff.wait_for(
            "document.querySelector('.player .refusal')?.dataset.code", TIMEOUT
        )
        assert code == "playback_ended"
