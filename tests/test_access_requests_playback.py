"""A refused playback start says how to ask, as a refused GET of the clip does (contract §12:
"decided exactly as a GET of the clip"; §13: a 403 no_grant or approval_required says how)."""

from __future__ import annotations

from gateway.types import Zone
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"


def start(live: Live, sub: str, role: str, purpose: str) -> dict[str, object]:
    headers = live.env.auth(
        sub, role, **{"X-Access-Purpose": purpose, "X-Access-Justification": "CASE-1 look"}
    )
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    r = live.client.post("/v1/playback", json=body, headers=headers)
    assert r.status_code == 403, r.text
    return dict(r.json()["error"])


def test_a_refused_playback_start_says_how_to_ask(live: Live) -> None:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, b"front-door footage " * 50)
    error = start(live, "sam", "support_agent", "customer_support")
    assert error["code"] == "no_grant"
    assert error["how_to_ask"] == {
        "method": "POST",
        "path": "/v1/access-requests",
        "body": {"customer_id": "c1", "cameras": ["front"], "purpose": "customer_support"},
    }
    legal = start(live, "lou", "legal", "legal_request")
    assert legal["code"] == "approval_required"
    assert legal["how_to_ask"]["body"]["purpose"] == "legal_request"
    # A refusal no request cures says nothing of asking.
    other = start(live, "sam", "support_agent", "legal_request")
    assert other["code"] == "purpose_not_permitted" and "how_to_ask" not in other
