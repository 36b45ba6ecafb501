"""Access requests in the console, in Chromium (docs/console.md, "Access requests").

The loop a person goes through: an agent refused `no_grant` at the desk asks from there, the
customer sees the count in her inbox, narrows and approves, the agent plays the clip under the
new grant, and the customer sees the view in Who looked. Real parts only: the `live` gateway,
Debian's chromium through Playwright, the demo's H.264 clip. Every string a requester typed is
shown as text (a hostile reason never becomes markup).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.demo.seeding import clip_bytes
from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.browser import off_loop, screenshot, sign_in
from tests.support.server import Live
from tests.support.video import HAS_DATA, PLAY_MUTED, VIDEO, playing_from

pytestmark = pytest.mark.browser

AGENT = "sam@support"
CUSTOMER = "cust-a"
CAMERA = "front-door"
OTHER = "garden"
TICKET = "TICKET-4521"
HOSTILE = "<img src=x onerror=window.__xss=1>"


def seed(live: Live) -> str:
    clip = (datetime.now(UTC) - timedelta(hours=3)).strftime(RECORDED_AT_FORMAT) + ".mp4"
    for camera in (CAMERA, OTHER):
        off_loop(live.env.put_clip, CUSTOMER, camera, clip, clip_bytes())
        live.env.set_zone(CUSTOMER, camera, Zone.OUTDOOR)
    return clip


def customer_token(live: Live, customer: str = CUSTOMER) -> str:
    return live.env.token("alice", "customer", customer_id=customer, ttl=3600)


def agent_token(live: Live, sub: str = AGENT, role: str = "support_agent") -> str:
    return live.env.token(sub, role, ttl=3600)


def requests_of(live: Live, token: str, **query: str) -> list[dict[str, Any]]:
    r = live.client.get(
        "/v1/access-requests", params=query, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["access_requests"])


def declare(page: Any, justification: str = f"{TICKET} doorbell offline") -> None:
    page.get_by_label("Justification").fill(justification)
    page.get_by_role("button", name="Declare").click()
    expect(page.locator(".declared")).to_contain_text(justification)


def refused_at_the_desk(page: Any) -> None:
    form = page.get_by_role("form", name="Open a camera by id")
    form.get_by_label("Customer").fill(CUSTOMER)
    form.get_by_label("Camera").fill(CAMERA)
    form.get_by_role("button", name="Open camera").click()
    expect(page.locator(".desk-footage .refusal")).to_have_attribute("data-code", "no_grant")


def ask(page: Any, reason: str, cameras: str | None = None, shot: str = "") -> None:
    """From the refusal: the form comes prefilled; send it (with other cameras if given)."""
    page.locator(".desk-footage").get_by_role("button", name="Request access").click()
    form = page.locator(".desk-footage form.ask-form")
    expect(form.get_by_label("Customer")).to_have_value(CUSTOMER)
    expect(form.get_by_label("Cameras", exact=True)).to_have_value(CAMERA)
    expect(form.get_by_label("Ticket")).to_have_value(TICKET)
    if cameras:
        form.get_by_label("Cameras", exact=True).fill(cameras)
    form.get_by_label("Reason").fill(reason)
    form.get_by_label("Access for").select_option(label="4 hours")
    if shot:
        form.scroll_into_view_if_needed()
        screenshot(page, shot)
    form.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="Request sent")).to_be_visible()


def no_script_ran(tab: Any) -> None:
    assert tab.evaluate("window.__xss") is None
    assert tab.locator("main img").count() == 0


def test_the_loop_ask_narrow_approve_play_and_see_it_in_who_looked(live, page):
    clip = seed(live)
    sign_in(page, live.url, agent_token(live), "/desk")
    declare(page)
    refused_at_the_desk(page)
    ask(
        page,
        f"Doorbell offline since Tuesday {HOSTILE}",
        cameras=f"{CAMERA}, {OTHER}",
        shot="agent-desk-request",
    )
    mine = page.locator("section[aria-labelledby='mine-title']")
    expect(mine.locator("tbody tr")).to_have_count(1)
    expect(mine).to_contain_text("pending")
    asked = requests_of(live, agent_token(live))[0]
    assert asked["cameras"] == [CAMERA, OTHER] and asked["duration_seconds"] == 4 * 3600
    assert asked["ticket"] == TICKET and asked["purpose"] == "customer_support"
    assert TICKET not in page.url

    # The customer: the count beside Inbox, the request with who, why, ticket, cameras, window.
    customer = page.context.new_page()
    sign_in(customer, live.url, customer_token(live), "/access")
    inbox_link = customer.locator("#nav a[href='#/inbox']")
    expect(inbox_link.locator(".count")).to_have_text("1")
    inbox_link.click()
    card = customer.get_by_role("article", name=f"Request from {AGENT}")
    expect(card).to_contain_text(f"Doorbell offline since Tuesday {HOSTILE}")  # as text
    expect(card).to_contain_text(TICKET)
    expect(card).to_contain_text(f"{CAMERA}, {OTHER}")
    expect(card.locator("time")).not_to_have_count(0)
    no_script_ran(customer)
    screenshot(customer, "customer-inbox")

    # Narrow: one camera fewer, one hour instead of four; approve.
    approve = card.get_by_role("form", name=f"Approve the request from {AGENT}")
    approve.get_by_label(OTHER).uncheck()
    approve.get_by_label("Access for").select_option(label="1 hour")
    approve.get_by_role("button", name="Approve").click()
    expect(customer.get_by_text("Nobody is waiting for your answer.")).to_be_visible()
    expect(customer.get_by_role("status")).to_contain_text(f"may see {CAMERA} for ticket")
    expect(inbox_link.locator(".count")).to_have_count(0)
    done = requests_of(live, customer_token(live))[0]
    assert done["state"] == "approved" and done["grant_id"]
    grants = live.client.get(
        "/v1/grants", headers={"Authorization": f"Bearer {customer_token(live)}"}
    ).json()["grants"]
    (given,) = [g for g in grants if g["grant_id"] == done["grant_id"]]
    assert given["cameras"] == [CAMERA] and given["request_id"] == done["request_id"]
    lasts = datetime.fromisoformat(given["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=55) < lasts <= timedelta(hours=1)

    # The agent plays the clip under the new grant, through a playback URL.
    page.reload()
    page.wait_for_selector("#view h1")
    declare(page)
    expect(mine).to_contain_text("approved")
    expect(mine).to_contain_text(done["grant_id"])
    page.get_by_role("button", name=f"Open {CUSTOMER}'s footage (ticket {TICKET})").click()
    page.get_by_role("button", name=f"Play clip {clip}").click()
    page.wait_for_function(f"() => {HAS_DATA}")
    assert page.evaluate(f"{VIDEO}.readyState") >= 2
    assert page.evaluate(f"{VIDEO}.currentSrc").startswith(f"{live.url}/v1/play/")
    page.evaluate(PLAY_MUTED)
    page.wait_for_function(f"() => {playing_from(0)}")
    expect(page.locator(".player")).to_contain_text(done["grant_id"])
    no_script_ran(page)

    # The customer sees the view in Who looked, and was told of the request and its first use.
    customer.get_by_role("link", name="Who looked").click()
    played = customer.locator(".timeline li", has_text=f"{AGENT} (support agent) played")
    expect(played).to_have_count(1)
    expect(played).to_contain_text(TICKET)
    customer.locator("#nav a[href='#/inbox']").click()
    notes = customer.locator("section[aria-labelledby='notes-title']")
    expect(notes).to_contain_text("Someone asked for access")
    expect(notes).to_contain_text("An access request was approved")
    expect(notes).to_contain_text("A grant was used for the first time")
    no_script_ran(customer)


def test_deny_with_a_message_and_cancel_a_pending_request(live, page):
    seed(live)
    sign_in(page, live.url, agent_token(live), "/desk")
    declare(page)
    refused_at_the_desk(page)
    ask(page, "first ask")
    # A second request, from the desk's own form, cancelled from My requests.
    page.get_by_role("button", name="Request access…").click()
    blank = page.locator(".ask-slot form.ask-form")
    expect(blank.get_by_label("Ticket")).to_have_value(TICKET)
    blank.get_by_label("Customer").fill(CUSTOMER)
    blank.get_by_label("Cameras", exact=True).fill(OTHER)
    blank.get_by_label("Reason").fill("second ask")
    blank.get_by_role("button", name="Send request").click()
    mine = page.locator("section[aria-labelledby='mine-title']")
    expect(mine.locator("tbody tr")).to_have_count(2)
    cancel = mine.get_by_role("button", name=f"Cancel the request to {CUSTOMER} (ticket {TICKET})")
    expect(cancel).to_have_count(2)
    cancel.first.click()  # newest first: the second ask
    expect(mine).to_contain_text("cancelled")
    states = {r["reason"]: r["state"] for r in requests_of(live, agent_token(live))}
    assert states == {"first ask": "pending", "second ask": "cancelled"}

    customer = page.context.new_page()
    sign_in(customer, live.url, customer_token(live), "/inbox")
    expect(customer.locator("#nav a[href='#/inbox'] .count")).to_have_text("1")
    card = customer.get_by_role("article", name=f"Request from {AGENT}")
    deny = card.get_by_role("form", name=f"Deny the request from {AGENT}")
    deny.get_by_label("Message (optional)").fill(f"Not without a call first {HOSTILE}")
    deny.get_by_role("button", name="Deny").click()
    expect(customer.get_by_text("Nobody is waiting for your answer.")).to_be_visible()
    answered = customer.locator("section[aria-labelledby='answered-title']")
    expect(answered).to_contain_text("denied")
    expect(answered).to_contain_text(f"Not without a call first {HOSTILE}")
    no_script_ran(customer)

    page.reload()
    page.wait_for_selector("#view h1")
    expect(mine).to_contain_text("denied")
    expect(mine).to_contain_text(f"Not without a call first {HOSTILE}")
    no_script_ran(page)


def test_another_customer_sees_nothing_and_cannot_answer(live, page):
    seed(live)
    staff = {"Authorization": f"Bearer {agent_token(live)}"}
    now = datetime.now(UTC)
    body = {
        "customer_id": CUSTOMER,
        "cameras": [CAMERA],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "purpose": "customer_support",
        "ticket": TICKET,
        "reason": "a look",
    }
    r = live.client.post("/v1/access-requests", json=body, headers=staff)
    assert r.status_code == 201, r.text
    sign_in(page, live.url, customer_token(live, "cust-b"), "/inbox")
    expect(page.get_by_text("Nobody is waiting for your answer.")).to_be_visible()
    expect(page.locator("#nav a[href='#/inbox'] .count")).to_have_count(0)
    other = {"Authorization": f"Bearer {customer_token(live, 'cust-b')}"}
    refused = live.client.post(
        f"/v1/access-requests/{r.json()['request_id']}/approve", headers=other
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_owner"


def test_queues_for_the_legal_approver_and_the_analyst(live, page):
    seed(live)
    legal = {"Authorization": f"Bearer {agent_token(live, 'lee@legal', 'legal')}"}
    now = datetime.now(UTC)
    body = {
        "customer_id": CUSTOMER,
        "cameras": [CAMERA],
        "footage_from": (now - timedelta(days=1)).isoformat(),
        "footage_until": now.isoformat(),
        "purpose": "legal_request",
        "ticket": "SUBPOENA-77",
        "reason": f"court order {HOSTILE}",
    }
    r = live.client.post("/v1/access-requests", json=body, headers=legal)
    assert r.status_code == 201, r.text
    request_id = r.json()["request_id"]

    # The customer sees it but does not answer it: staff do.
    sign_in(page, live.url, customer_token(live), "/inbox")
    card = page.get_by_role("article", name="Request from lee@legal")
    expect(card).to_contain_text("approved by staff (legal_approver)")
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.locator("#nav a[href='#/inbox'] .count")).to_have_count(0)

    approver = page.context.new_page()
    sign_in(approver, live.url, agent_token(live, "jo@legal", "legal_approver"), "/queues")
    row = approver.locator("tbody tr", has_text="SUBPOENA-77")
    expect(row).to_contain_text(f"court order {HOSTILE}")
    expect(row).to_contain_text("0 of 1")
    no_script_ran(approver)
    screenshot(approver, "legal-approver-queue")
    row.get_by_role("button", name="Approve lee@legal's request (ticket SUBPOENA-77)").click()
    expect(approver.get_by_text("Nothing waits for your approval.")).to_be_visible()
    got = live.client.get(f"/v1/access-requests/{request_id}", headers=legal).json()
    assert got["state"] == "approved" and got["approvals"] == ["jo@legal"]

    # A break-glass view opens a review; the analyst sees every request and closes the review.
    lead = live.env.auth(
        "kim@support",
        "support_lead",
        **{"X-Access-Purpose": "emergency", "X-Access-Justification": "INC-9 smoke alarm"},
    )
    assert live.client.get(f"/v1/footage/{CUSTOMER}/{CAMERA}", headers=lead).status_code == 200
    analyst = page.context.new_page()
    sign_in(analyst, live.url, live.env.token("ana", "security_analyst", ttl=3600), "/queues")
    expect(analyst.locator("section[aria-labelledby='queue-title']")).to_contain_text("SUBPOENA-77")
    reviews = analyst.locator("section[aria-labelledby='reviews-title']")
    close = reviews.get_by_role("form", name="Close the review of kim@support")
    close.get_by_label("Note").fill("checked with INC-9: a real alarm")
    close.get_by_role("button", name="Close review").click()
    expect(reviews).to_contain_text("No break-glass review is open.")
    no_script_ran(analyst)


def test_a_refused_play_offers_a_request_for_that_clips_window(live, page):
    clip = seed(live)
    customer = {"Authorization": f"Bearer {customer_token(live)}"}
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
    given = live.client.post("/v1/grants", json=body, headers=customer)
    assert given.status_code == 201, given.text
    sign_in(page, live.url, agent_token(live), "/desk")
    declare(page)
    page.get_by_role("button", name=f"Open {CUSTOMER}'s footage (ticket {TICKET})").click()
    play = page.get_by_role("button", name=f"Play clip {clip}")
    expect(play).to_be_visible()
    # The customer revokes the grant between the listing and the play.
    gone = live.client.delete(f"/v1/grants/{given.json()['grant_id']}", headers=customer)
    assert gone.status_code in (200, 204), gone.text
    play.click()
    refusal = page.locator(".player-slot .refusal")
    expect(refusal).to_have_attribute("data-code", "no_grant")
    page.locator(".player-slot").get_by_role("button", name="Request access").click()
    form = page.locator(".player-slot form.ask-form")
    expect(form.get_by_label("Cameras", exact=True)).to_have_value(CAMERA)
    form.get_by_label("Reason").fill("the clip I was about to play")
    form.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="Request sent")).to_be_visible()
    (asked,) = requests_of(live, agent_token(live))
    recorded_at = datetime.strptime(clip.removesuffix(".mp4"), RECORDED_AT_FORMAT).replace(
        tzinfo=UTC
    )
    start = datetime.fromisoformat(asked["footage_from"])
    end = datetime.fromisoformat(asked["footage_until"])
    # The clip's window, to the minute the form's inputs keep: five minutes either side.
    assert start <= recorded_at <= end
    assert end - start <= timedelta(minutes=11)
    assert asked["ticket"] == TICKET
