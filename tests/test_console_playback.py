"""The console plays footage in Chromium (docs/console.md, "Watching a clip").

Real parts only: the `live` gateway, Debian's chromium through Playwright, the committed demo
clip (a real H.264 MP4, gateway/demo/media/), and for redirect delivery moto's S3 behind the
SigV4-checking gate. A clip "plays" when the <video> has data (readyState >= 2), its
currentTime advances, and after a seek to the middle it plays on from there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from playwright.sync_api import expect

from gateway.demo.seeding import clip_bytes
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.browser import off_loop, screenshot, sign_in
from tests.support.server import Live, make_env, start_live
from tests.support.sigv4_gate import GatedMotoServer
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

pytestmark = pytest.mark.browser

AGENT = "sam@support"
CUSTOMER = "cust-a"
CAMERA = "front-door"
TICKET = "TICKET-4521"


def recorded(hours_ago: float) -> str:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return at.strftime(RECORDED_AT_FORMAT) + ".mp4"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seed_video(live: Live, data: bytes | None = None) -> str:
    clip, camera = recorded(3), CAMERA
    off_loop(live.env.put_clip, CUSTOMER, camera, clip, data or clip_bytes())
    live.env.set_zone(CUSTOMER, camera, Zone.OUTDOOR)
    return clip


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_long_clip(tmp_path_factory.mktemp("video"))


def customer_token(live: Live) -> str:
    return live.env.token("alice", "customer", customer_id=CUSTOMER, ttl=3600)


def grant(live: Live, cameras: list[str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "grantee": AGENT,
        "purpose": "customer_support",
        "cameras": cameras,
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": TICKET,
        "include_private": False,
    }
    auth = {"Authorization": f"Bearer {customer_token(live)}"}
    r = live.client.post("/v1/grants", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


def play_statuses(page: Any) -> list[int]:
    """Every response the page gets from a playback URL, in order (the server's answers)."""
    seen: list[int] = []
    page.on("response", lambda r: seen.append(r.status) if "/v1/play/" in r.url else None)
    return seen


def responses_from(page: Any, origin: str) -> list[int]:
    """The statuses of every response the page gets from `origin`, in order."""
    seen: list[int] = []
    page.on("response", lambda r: seen.append(r.status) if r.url.startswith(origin) else None)
    return seen


def wait_until(page: Any, expression: str, polling: int | str = "raf") -> None:
    """Poll a JS expression until truthy (as a function: the console's CSP forbids eval)."""
    page.wait_for_function(f"() => {expression}", polling=polling)


def assert_plays(page: Any, base_url: str, duration: float = 10.0) -> None:
    """The clip plays through a playback URL: data, time advancing, a seek to the middle."""
    wait_until(page, HAS_DATA)
    src = page.evaluate(f"{VIDEO}.currentSrc")
    assert src.startswith(f"{base_url}/v1/play/"), src  # a capability URL, no token in it
    page.evaluate(PLAY_MUTED)
    wait_until(page, playing_from(0))
    assert page.evaluate(f"{VIDEO}.duration") == pytest.approx(duration, abs=0.2)
    page.evaluate(seek_to(duration / 2))
    wait_until(page, playing_from(duration / 2))
    assert page.evaluate(f"{VIDEO}.error") is None


def test_a_customer_plays_her_clip_from_the_clip_list(live, page):
    clip = seed_video(live)
    statuses = play_statuses(page)
    sign_in(page, live.url, customer_token(live), "/cameras")
    page.get_by_role("button", name="Show clips").click()
    page.get_by_role("button", name=f"Play clip {clip}").click()
    assert_plays(page, live.url)
    player = page.locator(".player")
    expect(player).to_contain_text("the footage's owner")
    assert 200 in statuses or 206 in statuses
    player.evaluate("e => e.scrollIntoView({block: 'end'})")
    screenshot(page, "customer-playing")

    # Stop ends the session: the video lets go of the URL and the gateway refuses it after.
    url = page.evaluate(f"{VIDEO}.currentSrc")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("the playback session has ended")).to_be_visible()
    r = live.client.get(url, headers={"Range": "bytes=0-0"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "playback_ended"


def test_an_agent_watches_under_a_grant_until_the_customer_revokes_it(live, page, long_clip):
    clip = seed_video(live, long_clip)
    given = grant(live, [CAMERA])
    statuses = play_statuses(page)
    sign_in(page, live.url, live.env.token(AGENT, "support_agent", ttl=3600), "/desk")
    open_grant = page.get_by_role("button", name=f"Open {CUSTOMER}'s footage (ticket {TICKET})")
    expect(open_grant).to_be_disabled()  # purpose first
    page.get_by_label("Justification").fill(f"{TICKET} doorbell offline")
    page.get_by_role("button", name="Declare").click()
    expect(page.locator(".declared")).to_contain_text(f"{TICKET} doorbell offline")
    open_grant.click()
    page.get_by_role("button", name=f"Play clip {clip}").click()
    assert_plays(page, live.url, duration=10.0 * LOOPS)
    player = page.locator(".player")
    expect(player).to_contain_text(given["grant_id"])  # the grant it plays under, and until when
    shown = player.locator("time").first.get_attribute("datetime")
    assert instant(shown) - instant(given["expires_at"]) < timedelta(milliseconds=1)
    assert page.evaluate("sessionStorage.length") == 1 and page.evaluate("localStorage.length") == 0
    assert TICKET not in page.url
    player.evaluate("e => e.scrollIntoView({block: 'end'})")
    screenshot(page, "agent-desk-playing")

    # The customer sees the view in her access log with the declared purpose.
    auth = {"Authorization": f"Bearer {customer_token(live)}"}
    watching = live.client.get("/v1/playback", headers=auth).json()["sessions"]
    assert [(s["principal"], s["justification"]) for s in watching] == [
        (AGENT, f"{TICKET} doorbell offline")
    ]

    # She revokes the grant; the agent's next request through the playback URL is refused.
    r = live.client.delete(f"/v1/grants/{given['grant_id']}", headers=auth)
    assert r.status_code in (200, 204), r.text
    # Each replica may answer from its one-second liveness cache (contract §12), so the agent
    # seeks on, into parts not fetched yet, until the gateway refuses the next request.
    before = len(statuses)
    wait_until(page, SEEK_UNTIL_REFUSED, polling=200)
    after = statuses[before:]
    assert 403 in after  # the server refused it, not the browser…
    assert set(after[after.index(403) :]) == {403}  # …and served nothing after its first refusal
    refusal = page.locator(".player .refusal")
    expect(refusal).to_contain_text("Playback stopped")
    expect(refusal).to_have_attribute("data-code", "playback_ended")


def test_a_refusal_at_the_desk_says_why(live, page):
    seed_video(live)
    sign_in(page, live.url, live.env.token(AGENT, "support_agent", ttl=3600), "/desk")
    expect(page.get_by_text("No active grant names you or your roles.")).to_be_visible()
    page.get_by_label("Justification").fill(TICKET)
    page.get_by_role("button", name="Declare").click()
    form = page.get_by_role("form", name="Open a camera by id")
    form.get_by_label("Customer").fill(CUSTOMER)
    form.get_by_label("Camera").fill(CAMERA)
    form.get_by_role("button", name="Open camera").click()
    refusal = page.locator(".desk-footage .refusal")
    expect(refusal).to_have_attribute("data-code", "no_grant")
    expect(refusal).to_contain_text("(no_grant)")


def test_the_customer_stops_someone_watching_now(live, page):
    clip = seed_video(live)
    grant(live, ["*"])
    staff = live.env.auth(
        AGENT,
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": TICKET},
    )
    body = {"customer_id": CUSTOMER, "camera_id": CAMERA, "clip_id": clip}
    started = live.client.post("/v1/playback", json=body, headers=staff)
    assert started.status_code == 201, started.text
    url = started.json()["url"]
    assert live.client.get(url, headers={"Range": "bytes=0-9999"}).status_code == 206

    sign_in(page, live.url, customer_token(live), "/access")
    watching = page.locator(".watching")
    expect(watching).to_contain_text(f"{AGENT} is watching")
    expect(watching).to_contain_text(TICKET)
    # One entry for the playback (not one per request), marked as live.
    played = page.locator(".timeline li", has_text=f"{AGENT} (support agent) played")
    expect(played).to_have_count(1)
    expect(played).to_contain_text("watching now")
    screenshot(page, "customer-watching-now")
    watching.get_by_role("button", name=f"Stop {AGENT}'s playback of {clip}").click()
    expect(watching).to_contain_text("Nobody is watching your footage.")
    r = live.client.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "playback_ended"

    # The entry now sums the playback up: its request, the bytes, the share, why it ended.
    page.reload()
    expect(played).to_contain_text("1 request, 9.8 KiB sent")
    expect(played).to_contain_text(f"{round(100 * 10_000 / len(clip_bytes()))}% of the clip")
    expect(played).to_contain_text("Ended")
    expect(played).to_contain_text("you stopped it")


# --- redirect delivery: the <video> follows a 307 to S3, checked like S3 checks -------------


@pytest.fixture
def redirecting(aws_env: None, tmp_path) -> Iterator[Live]:
    server = GatedMotoServer({"testing": "testing"})
    endpoint = server.start()
    bucket = f"play-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.close()
    extra = {
        "FOOTGW_STORAGE": f"s3://{bucket}",
        "FOOTGW_S3_ENDPOINT_URL": endpoint,
        "FOOTGW_DELIVERY": "redirect",
    }
    try:
        with start_live(make_env(tmp_path, extra)) as running:
            running.state["gate"], running.state["endpoint"] = server.gate, endpoint
            yield running
    finally:
        server.stop()


def test_chromium_plays_through_redirect_delivery_against_the_sigv4_gate(redirecting, page):
    live = redirecting
    gate, endpoint = live.state["gate"], live.state["endpoint"]
    clip = seed_video(live)
    statuses = play_statuses(page)
    from_s3 = responses_from(page, endpoint)
    sign_in(page, live.url, customer_token(live), "/cameras")
    page.get_by_role("button", name="Show clips").click()
    page.get_by_role("button", name=f"Play clip {clip}").click()
    assert_plays(page, live.url)
    assert 307 in statuses  # the gateway redirected the video to S3…
    # …where the gate checked each presigned request as S3 does, with Chromium's own Range
    # header on it (not signed into the URL), and refused none.
    assert from_s3 and set(from_s3) <= {200, 206}, from_s3
    assert any("range" in {name.lower() for name in seen} for seen in gate.seen), gate.seen
