"""The console in Firefox too: Debian's firefox-esr over WebDriver BiDi (no Playwright build).

A smoke check in a second engine, not a second copy of tests/test_console_browser.py: sign-in
from the fragment, the customer's timeline with a hostile justification shown as text, the
analyst's principal page with its SVG chart, the audit search and the chain.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.types import Zone
from tests.support.browser import Firefox, no_firefox_reason
from tests.support.server import make_env

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(no_firefox_reason() is not None, reason=str(no_firefox_reason())),
]

CLIP = "20261127T101500Z.mp4"


@pytest.fixture
def gateway_env(tmp_path):
    """As `make run` serves it: dev mode, the only place the console takes `#token=` links."""
    return make_env(tmp_path, dev_mode=True)


HOSTILE = "<img src=x onerror=window.__xss=1>"


def staff(live, justification: str) -> dict[str, str]:
    return live.env.auth(
        "sam@support",
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": justification},
    )


def test_the_console_works_in_firefox(live, tmp_path):
    live.env.put_clip("c1", "front", CLIP, b"\x00" * 4096)
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    clip = f"/v1/footage/c1/front/{CLIP}"
    assert live.client.get(clip, headers=staff(live, f"T-1 {HOSTILE}")).status_code == 403
    for n in range(3):
        assert live.client.get(clip, headers=staff(live, f"T-{n} again")).status_code == 403
    alice = live.env.token("alice", "customer", customer_id="c1", ttl=600)
    ana = live.env.token("ana@security", "security_analyst", ttl=600)
    asyncio.run(drive(live.url, tmp_path, alice, ana))


async def drive(base: str, profile, alice: str, ana: str) -> None:
    async with Firefox(profile) as ff:
        await ff.goto(f"{base}/console/#token={alice}")
        await ff.wait_for("document.querySelectorAll('.timeline li').length === 4")
        assert "token" not in await ff.evaluate("location.href")
        assert await ff.evaluate("sessionStorage.getItem('footgw.console.token')") == alice
        text = await ff.evaluate("document.querySelector('main').innerText")
        assert HOSTILE in text and "no_grant" in text
        assert await ff.evaluate("typeof window.__xss") == "undefined"
        assert await ff.evaluate("document.querySelectorAll('main img').length") == 0
        title = await ff.evaluate("document.querySelector('.timeline time').title")
        assert title.endswith("Z (UTC)")

        # A token handed over while signed in is only offered until the person switches.
        await ff.evaluate(
            f"location.hash = {json.dumps('#token=' + ana + '&view=/principal/sam@support')}"
        )
        await ff.wait_for("document.getElementById('switch-session') !== null")
        assert await ff.evaluate("sessionStorage.getItem('footgw.console.token')") == alice
        await ff.evaluate("document.querySelector('#switch-session button').click()")
        await ff.wait_for("document.querySelectorAll('svg.chart rect.bar-denied').length === 1")
        assert "ana@security" in await ff.evaluate("document.getElementById('who').innerText")
        summary = await ff.evaluate("document.querySelector('svg.chart desc').textContent")
        assert summary.startswith("4 footage requests across 1 customer.")

        await ff.evaluate("location.hash = '#/audit?decision=deny'")
        await ff.wait_for("document.querySelectorAll('tbody tr').length === 4")
        await ff.evaluate("location.hash = '#/chain'")
        await ff.wait_for(
            "document.querySelector('main').innerText.includes('The chain verifies.')"
        )

        # The CSP requires Trusted Types: a string given to an HTML sink is refused, not parsed.
        with pytest.raises(RuntimeError, match=r"(?i)trusted|sink|CSP"):
            await ff.evaluate("document.body.innerHTML = '<b>parsed</b>'")
