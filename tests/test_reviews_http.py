"""Break-glass reviews over real HTTP (contract §13): each use opens (or joins) a review, a
security analyst closes it, and an overdue one raises a high `review_overdue` flag, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.types import Zone
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"


@pytest.fixture
def home(live: Live) -> Live:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, b"footage" * 100)
    return live


def break_glass(live: Live, sub: str = "lee") -> int:
    headers = live.env.auth(
        sub,
        "support_lead",
        **{"X-Access-Purpose": "emergency", "X-Access-Justification": "INC-1 fire alarm"},
    )
    return live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers).status_code


def analyst(live: Live, sub: str = "ana") -> dict[str, str]:
    return live.env.auth(sub, "security_analyst")


def open_reviews(live: Live) -> list[dict[str, object]]:
    r = live.client.get("/v1/reviews?state=open", headers=analyst(live))
    assert r.status_code == 200, r.text
    return list(r.json()["reviews"])


def test_a_break_glass_use_opens_one_review_that_an_analyst_closes(home: Live) -> None:
    assert break_glass(home) == 200
    assert break_glass(home) == 200  # the same emergency: joins the open review
    (review,) = open_reviews(home)
    assert review["subject"] == "lee" and review["customer_id"] == "c1"
    assert review["uses"] == 2 and review["overdue"] is False
    agent = home.env.auth("sam", "support_agent")
    path = f"/v1/reviews/{review['review_id']}/close"
    assert home.client.post(path, json={"note": "fine"}, headers=agent).status_code == 403
    assert home.client.get("/v1/reviews", headers=agent).status_code == 403
    assert home.client.post(path, json={"note": ""}, headers=analyst(home)).status_code == 400
    r = home.client.post(path, json={"note": "Fire alarm confirmed."}, headers=analyst(home))
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert r.json()["closed_by"] == "ana"
    again = home.client.post(path, json={"note": "twice"}, headers=analyst(home))
    assert again.status_code == 400
    assert open_reviews(home) == []
    types = {"type": ["review.opened", "review.closed"], "limit": 100}
    found = home.client.get("/v1/audit/events", params=types, headers=analyst(home))
    assert [e["type"] for e in found.json()["events"]] == ["review.opened", "review.closed"]
    assert break_glass(home) == 200  # a new use after the close opens a new review
    assert len(open_reviews(home)) == 1


def test_an_overdue_review_raises_a_high_flag_once(home: Live) -> None:
    assert break_glass(home) == 200
    (review,) = open_reviews(home)
    reviews = home.services.reviews
    wall_clock = reviews.clock
    assert home.server.run_on_loop(home.services.sweeper.once()) == (0, 0)  # not due yet
    reviews.clock = lambda: datetime.now(UTC) + timedelta(hours=24, minutes=1)
    try:
        assert home.server.run_on_loop(home.services.sweeper.once()) == (0, 1)
        assert home.server.run_on_loop(home.services.sweeper.once()) == (0, 0)  # once
    finally:
        reviews.clock = wall_clock
    flags = home.client.get("/v1/flags?principal=lee", headers=analyst(home)).json()["flags"]
    overdue = [f for f in flags if f["rule"] == "review_overdue"]
    assert len(overdue) == 1 and overdue[0]["severity"] == "high"
    assert overdue[0]["detail"]["review_id"] == review["review_id"]
    (flagged,) = open_reviews(home)
    assert flagged["overdue_flag_id"] == overdue[0]["flag_id"]
