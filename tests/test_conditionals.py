"""HTTP conditionals on footage (gateway/conditionals.py): If-Range, If-None-Match, If-Match.

Pure cases first, then over real sockets: every conditional answer (200, 206, 304, 412) is
still one audited decision carrying its event id, and authorization still comes first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from gateway.conditionals import Condition, evaluate, range_applies
from gateway.errors import PreconditionFailed
from gateway.types import Zone
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = bytes(range(256)) * 64
ETAG = '"abc123"'
MODIFIED = datetime(2026, 11, 27, 10, 15, 7, tzinfo=UTC)


def test_if_match_fails_unless_a_strong_tag_or_star_names_the_clip() -> None:
    assert evaluate(ETAG, None, ETAG) is Condition.SERVE
    assert evaluate(f'"x", {ETAG}', None, ETAG) is Condition.SERVE
    assert evaluate("*", None, ETAG) is Condition.SERVE
    for header in ('"other"', f"W/{ETAG}", "", "x" * 5000):
        with pytest.raises(PreconditionFailed):
            evaluate(header, None, ETAG)


def test_if_none_match_is_not_modified_on_a_weak_match_or_star() -> None:
    assert evaluate(None, ETAG, ETAG) is Condition.NOT_MODIFIED
    assert evaluate(None, f'"x", W/{ETAG}', ETAG) is Condition.NOT_MODIFIED
    assert evaluate(None, "*", ETAG) is Condition.NOT_MODIFIED
    assert evaluate(None, '"other"', ETAG) is Condition.SERVE
    assert evaluate(None, None, ETAG) is Condition.SERVE


def test_if_match_is_asked_before_if_none_match() -> None:
    with pytest.raises(PreconditionFailed):
        evaluate('"other"', ETAG, ETAG)


def test_if_range_honours_the_range_only_for_the_clip_as_it_is() -> None:
    assert range_applies(None, ETAG, MODIFIED)
    assert range_applies(ETAG, ETAG, MODIFIED)
    assert range_applies(format_datetime(MODIFIED, usegmt=True), ETAG, MODIFIED)
    stale = [
        '"old"',
        f"W/{ETAG}",  # a weak tag never matches strongly (RFC 9110 §13.1.5)
        format_datetime(MODIFIED - timedelta(seconds=1), usegmt=True),
        "not a date",
        "Mon, 32 Foo 2026 99:99:99 GMT",
        "x" * 5000,
    ]
    for header in stale:
        assert not range_applies(header, ETAG, MODIFIED), header


@pytest.fixture
def clip(live: Live) -> Live:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, DATA)
    return live


def alice(live: Live, **headers: str) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1", **headers)


def decision(live: Live, event_id: str) -> dict[str, Any]:
    analyst = live.env.auth("ana", "security_analyst")
    r = live.client.get(
        "/v1/audit/events", params={"type": "access.decision", "limit": 1000}, headers=analyst
    )
    [event] = [e for e in r.json()["events"] if e["event_id"] == event_id]
    return dict(event)


def validators(live: Live) -> tuple[str, str]:
    r = live.client.head(PATH, headers=alice(live))
    assert r.status_code == 200
    return r.headers["etag"], r.headers["last-modified"]


def test_a_stale_if_range_gets_the_whole_clip_and_is_audited(clip: Live) -> None:
    r = clip.client.get(PATH, headers=alice(clip, Range="bytes=0-9", **{"If-Range": '"stale"'}))
    assert r.status_code == 200 and r.content == DATA and "content-range" not in r.headers
    event = decision(clip, r.headers["x-audit-event-id"])
    assert event["status"] == 200 and event["range"] is None and event["decision"] == "allow"


def test_a_current_if_range_gets_the_range(clip: Live) -> None:
    etag, modified = validators(clip)
    for validator in (etag, modified):
        r = clip.client.get(PATH, headers=alice(clip, Range="bytes=0-9", **{"If-Range": validator}))
        assert r.status_code == 206 and r.content == DATA[:10], validator
        assert decision(clip, r.headers["x-audit-event-id"])["range"] == "bytes=0-9"


def test_if_none_match_on_the_current_etag_is_an_audited_304(clip: Live) -> None:
    etag, _ = validators(clip)
    for method in ("GET", "HEAD"):
        r = clip.client.request(method, PATH, headers=alice(clip, **{"If-None-Match": etag}))
        assert r.status_code == 304 and r.content == b"", method
        assert r.headers["etag"] == etag and r.headers["cache-control"] == "private, no-store"
        assert r.headers["x-request-id"]
        event = decision(clip, r.headers["x-audit-event-id"])
        assert event["status"] == 304 and event["decision"] == "allow"
    r = clip.client.get(PATH, headers=alice(clip, **{"If-None-Match": '"old"'}))
    assert r.status_code == 200 and r.content == DATA


def test_if_match_on_another_etag_is_an_audited_412(clip: Live) -> None:
    r = clip.client.get(PATH, headers=alice(clip, **{"If-Match": '"old"'}))
    assert r.status_code == 412 and r.json()["error"]["code"] == "precondition_failed"
    event = decision(clip, r.headers["x-audit-event-id"])
    assert event["status"] == 412 and event["reason"] == "owner"
    etag, _ = validators(clip)
    assert clip.client.get(PATH, headers=alice(clip, **{"If-Match": etag})).status_code == 200


def test_conditionals_never_come_before_authorization(clip: Live) -> None:
    etag, _ = validators(clip)
    mallory = clip.env.auth("mallory", "customer", customer_id="c2", **{"If-None-Match": etag})
    r = clip.client.get(PATH, headers=mallory)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_owner"
    r = clip.client.get(PATH, headers={"If-Match": '"old"'})
    assert r.status_code == 401


def test_a_405_on_a_clip_path_lists_delete_in_allow(clip: Live) -> None:
    for method in ("POST", "PUT", "PATCH"):
        r = clip.client.request(method, PATH, headers=alice(clip))
        assert r.status_code == 405, method
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed == {"GET", "HEAD", "DELETE"}, r.headers["allow"]
