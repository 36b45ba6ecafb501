"""The web console in a real browser against a real gateway (docs/console.md).

Chromium (Debian's, through Playwright) drives /console/ on the `live` gateway; staff requests
that the console should then show go through httpx with the contract's headers. Each main view
is saved to docs/screenshots/ as the test passes through it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from gateway.types import RECORDED_AT_FORMAT, Zone
from tests.support.browser import PHONE, TIMEZONE, off_loop, screenshot, sign_in
from tests.support.server import make_env

pytestmark = pytest.mark.browser


@pytest.fixture
def gateway_env(tmp_path):
    """As `make run` serves it: dev mode, the only place the console takes `#token=` links."""
    return make_env(tmp_path, dev_mode=True)


HOSTILE = "<img src=x onerror=window.__xss=1>"
AGENT = "sam@support"
SUPPORT = {"X-Access-Purpose": "customer_support"}


def clip_id(hours_ago: float, suffix: str = "") -> str:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return at.strftime(RECORDED_AT_FORMAT) + suffix + ".mp4"


def seed_camera(live, customer: str, camera: str, zone: Zone, *clips: str) -> None:
    for clip in clips:
        off_loop(live.env.put_clip, customer, camera, clip, b"\x00\x00\x00\x18ftypmp42" * 4096)
    live.env.set_zone(customer, camera, zone)


def customer_token(live, customer: str, sub: str | None = None) -> str:
    return live.env.token(sub or customer, "customer", customer_id=customer, ttl=3600)


def grant(live, customer: str, ticket: str, grantee: str = AGENT) -> str:
    now = datetime.now(UTC)
    body = {
        "grantee": grantee,
        "purpose": "customer_support",
        "cameras": ["*"],
        "footage_from": (now - timedelta(days=2)).isoformat(),
        "footage_until": now.isoformat(),
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": ticket,
        "include_private": False,
    }
    token = customer_token(live, customer)
    r = live.client.post("/v1/grants", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return str(r.json()["grant_id"])


def agent_get(live, path: str, justification: str):
    headers = live.env.auth(AGENT, "support_agent", **SUPPORT)
    headers["X-Access-Justification"] = justification
    return live.client.get(path, headers=headers)


def analyst_token(live) -> str:
    return live.env.token("ana@security", "security_analyst", ttl=3600)


def text_of(page, selector: str) -> str:
    return " ".join(page.locator(selector).all_inner_texts())


# --- sign-in --------------------------------------------------------------------------------


def test_token_from_the_fragment_is_kept_in_session_storage_only(live, page):
    token = customer_token(live, "c1", "alice")
    response = sign_in(page, live.url, token)
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "token" not in page.url  # taken out of the address bar…
    page.go_back()  # …and out of history: the entry before the console is the blank tab
    assert page.url == "about:blank"
    page.go_forward()
    page.wait_for_selector("#view h1")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('footgw.console.token')") == token
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length") == 0
    assert "alice" in text_of(page, "#who")

    # A token handed over while the console is open (same document) switches the session once
    # the person says so (the asking itself: test_a_handed_token_asks_before_replacing_…).
    analyst = analyst_token(live)
    page.goto(f"{live.url}/console/#token={analyst}")
    page.get_by_role("button", name="Switch to ana@security").click()
    page.wait_for_selector("h1:has-text('Flags')")
    assert "token" not in page.url and "ana@security" in text_of(page, "#who")
    assert page.evaluate("sessionStorage.getItem('footgw.console.token')") == analyst
    page.get_by_role("button", name="Sign out").click()
    assert page.locator("#signed-out").is_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_handed_token_asks_before_replacing_a_signed_in_session(live, page):
    """A `#token=` link opened while signed in (someone else's token, sent to trick the person
    into acting in another account) changes nothing until the person chooses: same document
    or a fresh load of the console in the tab, and an unusable token never ends the session."""
    alice = customer_token(live, "c1", "alice")
    sign_in(page, live.url, alice)
    stored = "sessionStorage.getItem('footgw.console.token')"

    def still_alice() -> None:
        assert "alice" in text_of(page, "#who") and page.evaluate(stored) == alice
        assert page.locator("#view h1").inner_text() == "Who looked at my footage"

    mallory = customer_token(live, "c2", "mallory")
    page.goto(f"{live.url}/console/#token={mallory}")  # same document: a hashchange
    prompt = page.locator("#switch-session")
    prompt.wait_for()
    assert "mallory (customer)" in prompt.inner_text() and "alice" in prompt.inner_text()
    assert "token" not in page.url
    still_alice()
    screenshot(page, "switch-session")
    page.get_by_role("button", name="Stay signed in as alice").click()
    prompt.wait_for(state="detached")
    still_alice()

    page.goto("about:blank")  # a new document in the same tab: sessionStorage stays
    page.goto(f"{live.url}/console/#token={mallory}")
    prompt.wait_for()
    still_alice()
    assert page.evaluate("sessionStorage.length") == 1  # the offered token is not stored

    for unusable in ("not-a-jwt", live.env.token("eve", "customer", customer_id="c3", ttl=-60)):
        page.goto(f"{live.url}/console/#token={unusable}")
        page.locator("#switch-session h2", has_text="was not used").wait_for()
        still_alice()
    page.get_by_role("button", name="Dismiss").click()
    prompt.wait_for(state="detached")

    page.goto(f"{live.url}/console/#token={mallory}")
    page.get_by_role("button", name="Switch to mallory").click()
    prompt.wait_for(state="detached")
    page.wait_for_function("document.getElementById('who').textContent.includes('mallory')")
    assert page.evaluate(stored) == mallory and "alice" not in text_of(page, "#who")


def test_pasted_token_signs_in_and_an_expired_one_signs_out(live, page):
    # The console's expiry timer runs on a clock the test moves (Playwright's page.clock),
    # so the token can live long enough to sign in on a slow machine and still expire on cue.
    page.clock.install()
    page.goto(f"{live.url}/console/?token=leaked")
    assert "query string was ignored" in text_of(page, "#signin-notice")
    assert "token=" not in page.url
    page.get_by_label("Bearer token").fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    assert "three dot-separated parts" in text_of(page, "#signin-error")
    short = live.env.token("alice", "customer", customer_id="c1", ttl=600)
    page.get_by_label("Bearer token").fill(short)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#view h1")
    assert page.locator("#signed-out").is_hidden()
    page.clock.fast_forward(601_000)  # past the token's exp: the expiry timer fires
    page.wait_for_selector("#signed-out:not([hidden])")
    assert "expired" in text_of(page, "#signin-notice")
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "signed-out")


def test_a_401_from_the_api_signs_out_with_its_message(live, page):
    head, body, _signature = customer_token(live, "c1", "alice").split(".")
    page.goto(f"{live.url}/console/#token={head}.{body}.AAAA")  # readable claims, bad signature
    page.wait_for_selector("#signed-out:not([hidden])")
    notice = text_of(page, "#signin-notice")
    assert notice.startswith("Signed out: ") and len(notice) > len("Signed out: ")


# --- customer views -------------------------------------------------------------------------


def test_customer_grants_sees_the_agents_view_revokes_and_the_agent_is_refused(live, page):
    clip = clip_id(3)
    seed_camera(live, "c1", "front", Zone.OUTDOOR, clip)
    seed_camera(live, "c1", "nursery", Zone.PRIVATE, clip_id(3, "-n"))
    sign_in(page, live.url, customer_token(live, "c1", "alice"))
    assert page.locator("#view h1").inner_text() == "Who looked at my footage"

    # Keyboard: the skip link first, then the views in the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Who looked"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Grants')")

    page.get_by_label("Grantee").fill(AGENT)
    page.get_by_label("Ticket").fill("TICKET-77")
    page.get_by_label("front").check()
    page.get_by_role("button", name="Grant access").click()
    row = page.locator("table tr", has_text=AGENT)
    row.wait_for()
    assert "active" in row.inner_text() and "TICKET-77" in row.inner_text()
    screenshot(page, "customer-grants")

    seen = agent_get(live, f"/v1/footage/c1/front/{clip}", "TICKET-77 porch light flickers")
    assert seen.status_code == 200

    page.get_by_role("link", name="Who looked").click()
    entry = page.locator(".timeline li", has_text=AGENT).first
    entry.wait_for()
    text = entry.inner_text()
    for expected in (
        "support agent",
        "customer support",
        "TICKET-77 porch light flickers",
        clip,
        "allowed",
        "Bytes sent",
    ):
        assert expected in text, expected
    _assert_local_time_with_utc_title(entry.locator("time").first)

    page.get_by_role("link", name="Grants").click()
    row = page.locator("table tr", has_text=AGENT)
    row.wait_for()
    assert re.search(r"\b1\b", row.locator("td[data-label='Uses']").inner_text())
    row.get_by_role("button", name=re.compile("Revoke")).click()
    page.locator("table tr", has_text="revoked").wait_for()
    assert "Revoked" in text_of(page, "[role=status]")

    refused = agent_get(live, f"/v1/footage/c1/front/{clip}", "TICKET-77 once more")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "no_grant"
    page.get_by_role("link", name="Who looked").click()
    denied = page.locator(".timeline li", has_text="TICKET-77 once more")
    denied.wait_for()
    assert "denied" in denied.inner_text() and "no_grant" in denied.inner_text()
    screenshot(page, "customer-access-log")
    page.set_viewport_size(PHONE)
    screenshot(page, "customer-access-log-phone")


def test_hostile_justification_is_shown_as_text_never_markup(live, page):
    clip = clip_id(2)
    seed_camera(live, "c1", "front", Zone.OUTDOOR, clip)
    refused = agent_get(live, f"/v1/footage/c1/front/{clip}", f"TICKET-1 {HOSTILE}")
    assert refused.status_code == 403  # no grant, but the attempt is in the log

    sign_in(page, live.url, customer_token(live, "c1", "alice"))
    shown = page.get_by_text(HOSTILE)
    shown.wait_for()
    assert shown.is_visible()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0

    analyst = page.context.new_page()
    sign_in(analyst, live.url, analyst_token(live), "/audit?decision=deny")
    cell = analyst.locator("td[data-label='Justification']", has_text=HOSTILE)
    cell.wait_for()
    assert cell.inner_text() == f"TICKET-1 {HOSTILE}"
    assert analyst.evaluate("window.__xss") is None
    assert analyst.locator("main img").count() == 0


def test_unauthenticated_text_is_never_shown_as_a_staff_statement(live, page):
    clip = clip_id(2)
    seed_camera(live, "c1", "front", Zone.OUTDOOR, clip)
    lie = "Support here: CASE-9. Your camera is hacked, call +1 555 0100"
    headers = {"X-Access-Purpose": "customer_support", "X-Access-Justification": lie}
    anonymous = live.client.get(f"/v1/footage/c1/front/{clip}", headers=headers)
    assert anonymous.status_code == 401  # kept in the audit log, as evidence

    sign_in(page, live.url, customer_token(live, "c1", "alice"))
    entry = page.locator(".timeline li", has_text="without a valid sign-in")
    entry.wait_for()
    text = entry.inner_text()
    assert "denied" in text and "unauthenticated" in text
    assert "CASE-9" not in page.locator("main").inner_text()
    assert "Customer support" not in text and "customer support" not in text


def test_customer_changes_a_zone_and_deletes_a_clip(live, page):
    keep, doomed = clip_id(5), clip_id(4)
    seed_camera(live, "c1", "front", Zone.OUTDOOR, keep, doomed)
    seed_camera(live, "c1", "nursery", Zone.PRIVATE, clip_id(5, "-n"))
    owner = {"Authorization": f"Bearer {customer_token(live, 'c1', 'alice')}"}
    sign_in(page, live.url, customer_token(live, "c1", "alice"), "/cameras")
    card = page.locator("article.camera", has_text="front")
    card.get_by_label("Zone").select_option("private")
    card.get_by_label("Label").fill("Front door")
    card.get_by_role("button", name="Save").click()
    card.get_by_text("Saved:").wait_for()
    cameras = live.client.get("/v1/cameras/c1", headers=owner).json()["cameras"]
    front = next(c for c in cameras if c["camera_id"] == "front")
    assert front["zone"] == "private" and front["label"] == "Front door"

    card.get_by_role("button", name="Show clips").click()
    card.get_by_role("button", name=f"Delete clip {doomed}", exact=True).click()
    screenshot(page, "customer-cameras")
    card.get_by_role("button", name=f"Delete clip {doomed} for good").click()
    card.get_by_text(f"Deleted {doomed}").wait_for()
    assert live.client.get(f"/v1/footage/c1/front/{doomed}", headers=owner).status_code == 404
    assert live.client.get(f"/v1/footage/c1/front/{keep}", headers=owner).status_code == 200


def _assert_local_time_with_utc_title(time_el) -> None:
    title = time_el.get_attribute("title")
    assert title and title.endswith("Z (UTC)")
    instant = datetime.fromisoformat(title.removesuffix(" (UTC)").replace("Z", "+00:00"))
    local = instant.astimezone(ZoneInfo(TIMEZONE))
    hour = f"{local.hour % 12 or 12}:{local:%M:%S}"
    assert hour in time_el.inner_text()  # the viewer's zone, not UTC
    assert local.utcoffset() != timedelta(0)


# --- analyst views --------------------------------------------------------------------------


def sweep(live, customers: int = 12) -> list[int]:
    """The detection scenario: one support agent looks at a clip of each of 12 customers."""
    statuses = []
    for n in range(1, customers + 1):
        customer = f"cust-{n:02d}"
        clip = clip_id(6)
        seed_camera(live, customer, "porch", Zone.OUTDOOR, clip)
        grant(live, customer, f"T-{n:03d}")
        r = agent_get(live, f"/v1/footage/{customer}/porch/{clip}", f"T-{n:03d} routine check")
        statuses.append(r.status_code)
    return statuses


def open_flag(live, rule: str, principal: str, timeout: float = 5.0) -> dict:
    headers = {"Authorization": f"Bearer {analyst_token(live)}"}
    deadline = time.monotonic() + timeout
    while True:
        r = live.client.get("/v1/flags", params={"status": "open"}, headers=headers)
        assert r.status_code == 200, r.text
        found = [f for f in r.json()["flags"] if f["rule"] == rule and f["principal"] == principal]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no open {rule} flag for {principal}"
        time.sleep(0.05)


def test_analyst_opens_the_browsing_flag_sees_the_chart_and_resolves_it(live, page):
    statuses = sweep(live)
    assert statuses[:9] == [200] * 9  # the 10th view suspends; what follows is refused
    assert statuses[-1] == 403
    flag = open_flag(live, "customer_browsing", AGENT)

    sign_in(page, live.url, analyst_token(live))
    assert page.locator("#view h1").inner_text() == "Flags"
    card = page.locator("article.flag", has_text="Customer browsing").first
    card.wait_for()
    assert AGENT in card.inner_text() and "high" in card.inner_text()
    screenshot(page, "analyst-flags")

    card.get_by_role("link", name="Customer browsing").click()
    page.wait_for_url(re.compile(r"#/flags/"))
    evidence = page.locator(".evidence table tbody tr")
    evidence.first.wait_for()
    assert evidence.count() == len(flag["event_ids"]) >= 5
    assert "cust-01" in page.locator(".evidence table").inner_text()
    screenshot(page, "analyst-flag-evidence")

    page.locator("article.flag dl.facts").get_by_role("link", name=AGENT).click()
    page.wait_for_selector("h1:has-text('Principal: sam@support')")
    status = page.locator("section", has_text="Status").first
    status.get_by_text("suspended", exact=True).wait_for()
    chart = page.locator("svg.chart")
    chart.wait_for()
    assert page.locator("svg.chart rect.bar-allowed").count() >= 1
    assert page.locator("svg.chart circle.dot-customers").count() >= 1
    summary = chart.locator("desc").text_content() or ""
    peak = re.search(r"most customers in one hour: (\d+)", summary)
    assert peak and int(peak.group(1)) >= 5  # the sweep, at a glance
    screenshot(page, "analyst-principal")

    page.go_back()
    form = page.locator("form.resolve")
    form.get_by_label("Resolution").fill("Agent swept customers without tickets; retrained.")
    form.get_by_role("button", name="Resolve flag").click()
    page.get_by_text("Flag resolved.").wait_for()
    headers = {"Authorization": f"Bearer {analyst_token(live)}"}
    resolved = live.client.get("/v1/flags", params={"status": "resolved"}, headers=headers)
    assert flag["flag_id"] in [f["flag_id"] for f in resolved.json()["flags"]]

    page.goto(f"{live.url}/console/#/principal/{AGENT}")
    page.get_by_label("Reason").fill("Resolved with the agent's lead")
    page.get_by_role("button", name="Reinstate").click()
    page.get_by_text(f"{AGENT} is reinstated.").wait_for()
    principal = live.client.get(f"/v1/principals/{AGENT}", headers=headers).json()
    assert principal["status"] == "active"


def test_analyst_searches_the_audit_log_page_by_page_and_sees_the_chain_verify(live, page):
    seed_camera(live, "c1", "front", Zone.OUTDOOR, clip_id(1))
    owner = live.env.auth("alice", "customer", customer_id="c1")
    for _ in range(30):  # 30 listings: 30 access.decision events by alice
        assert live.client.get("/v1/footage/c1/front", headers=owner).status_code == 200
    for n in range(3):  # 3 denials: the agent has no grant
        assert agent_get(live, "/v1/footage/c1/front", f"T-{n} no grant").status_code == 403

    sign_in(page, live.url, analyst_token(live), "/audit")
    form = page.locator("form.filters")
    form.get_by_label("Per page").select_option("25")
    form.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"limit=25"))
    # The rows of the page before may still stand while the new page renders: wait for the
    # state itself (Playwright's expect retries), never for a row that both pages have.
    expect(page.locator("table tbody tr")).to_have_count(25)
    last_seq = int(page.locator("td[data-label='Seq']").nth(24).inner_text())
    page.get_by_role("link", name="Next page →").click()
    page.wait_for_url(re.compile(rf"after_seq={last_seq}(&|$)"))
    page.get_by_role("link", name="← First page").wait_for()
    seqs = [int(s) for s in page.locator("td[data-label='Seq']").all_inner_texts()]
    assert seqs and min(seqs) == last_seq + 1
    screenshot(page, "analyst-audit")

    form = page.locator("form.filters")
    form.get_by_label("Decision").select_option("deny")
    form.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"decision=deny"))
    denied = re.compile("denied")
    expect(page.locator("td[data-label='Decision']")).to_have_text([denied, denied, denied])
    principals = page.locator("td[data-label='Principal']").all_inner_texts()
    assert all(AGENT in p for p in principals)

    page.get_by_role("link", name="Chain integrity").click()
    page.get_by_text("The chain verifies.").wait_for()
    assert "Events checked" in text_of(page, "#view")
    screenshot(page, "analyst-chain")


def test_roles_decide_which_views_appear(live, page):
    sign_in(page, live.url, live.env.token("sam@support", "support_agent"))
    nav = text_of(page, "#nav")
    assert "Grants" in nav and "Flags" not in nav and "Who looked" not in nav
    page.wait_for_selector("h1:has-text('Grants addressed to you')")
    page.goto(f"{live.url}/console/#/flags")
    page.get_by_text("Your roles do not include this view.").wait_for()
