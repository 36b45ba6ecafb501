"""Validation at the boundary, over real HTTP (docs/contract.md §5): times outside the years
2000 to 2100, hostile JSON, unknown cameras and ungrantable purposes are 400s, never stored,
and never a 500 later for anyone reading what was stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.types import Zone

CLIP = "20261127T101500Z.mp4"
DATA = b"footage " * 100


@pytest.fixture
def home(live):
    env = live.env
    env.set_zone("c1", "front", Zone.OUTDOOR)
    env.put_clip("c1", "front", CLIP, DATA)
    env.put_clip("c1", "garage", CLIP, DATA)  # footage, no zone row
    env.set_zone("c1", "porch", Zone.OUTDOOR)  # a zone row, no footage yet
    env.put_clip("c2", "yard", CLIP, DATA)  # another customer's camera
    return live


def alice(live):
    return live.env.auth("alice", "customer", customer_id="c1")


def body(**changes):
    now = datetime.now(UTC)
    grant = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "ticket": "T-1",
    }
    return grant | changes


def post_grant(live, **changes):
    return live.client.post("/v1/grants", json=body(**changes), headers=alice(live))


def sam_lists(live):
    headers = live.env.auth(
        "sam",
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": "T-1 question"},
    )
    return live.client.get("/v1/footage/c1/front", headers=headers)


def analyst(live):
    return live.env.auth("ana", "security_analyst")


def error_code(response):
    return response.json()["error"]["code"]


# Times that were stored and then could not be read back (a year before 1000 is formatted
# without its leading zeros), or that overflowed while being converted to UTC, or are merely
# absurd: each a 400 naming its field, and nothing stored.
OUT_OF_RANGE = [
    ("footage_from", "0999-12-31T23:00:00Z"),
    ("footage_from", "0001-01-01T00:00:00+01:00"),
    ("footage_from", "1999-12-31T23:59:59Z"),
    ("footage_until", "2101-01-01T00:00:00Z"),
    ("footage_until", "9999-12-31T23:59:59-01:00"),
    ("expires_at", "0001-01-01T00:00:00+01:00"),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_grant_times_outside_2000_to_2100_are_400_and_nothing_is_stored(home, field, value):
    changes = {field: value}
    if field == "footage_until":
        changes["footage_from"] = "2026-01-01T00:00:00Z"
    r = post_grant(home, **changes)
    assert r.status_code == 400, r.text
    assert error_code(r) == "bad_request" and field in r.json()["error"]["message"]
    listing = home.client.get("/v1/grants", headers=alice(home))
    assert listing.status_code == 200 and listing.json()["grants"] == []
    # Staff requests on this customer read its grants: they still answer, and deny.
    assert sam_lists(home).status_code == 403


def test_grant_times_at_the_edges_of_the_range_are_accepted(home):
    r = post_grant(home, footage_from="2000-01-01T00:00:00Z", footage_until="2100-12-31T23:59:59Z")
    assert r.status_code == 201, r.text
    assert home.client.get("/v1/grants", headers=alice(home)).status_code == 200
    gid = r.json()["grant_id"]
    assert home.client.delete(f"/v1/grants/{gid}", headers=alice(home)).status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0999-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("name", ["since", "until"])
def test_audit_filter_times_outside_2000_to_2100_are_400(home, name, value):
    r = home.client.get("/v1/audit/events", params={name: value}, headers=analyst(home))
    assert r.status_code == 400, r.text
    assert error_code(r) == "bad_request" and name in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/audit/events", "principal"),
        ("/v1/audit/events", "customer_id"),
        ("/v1/flags", "principal"),
    ],
)
def test_a_nul_in_a_text_filter_is_400(home, path, name):
    """PostgreSQL refuses a NUL in a query's text: a 500 there, never a match anywhere."""
    r = home.client.get(path, params={name: "sam\x00"}, headers=analyst(home))
    assert r.status_code == 400, r.text
    assert error_code(r) == "bad_request" and name in r.json()["error"]["message"]


# Every JSON body the API reads, each with a valid caller.
BODIES = [
    ("POST", "/v1/grants", "alice"),
    ("PUT", "/v1/cameras/c1/front", "alice"),
    ("POST", "/v1/flags/fl_none/resolve", "ana"),
    ("POST", "/v1/principals/sam/suspend", "ana"),
]


def caller(live, who):
    return alice(live) if who == "alice" else analyst(live)


HOSTILE_JSON = [
    b"[" * 60_000,  # past the interpreter's recursion limit while parsing
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    json.dumps({"label": [[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]}).encode(),
    b'{"zone": "outdoor", "label": "\\ud800", "resolution": "\\ud800", "reason": "\\udfff"}',
    b'{"grantee": "sam", "ticket": "T-1", "\\ud83d": 1}',  # a lone surrogate as a key
    # A surrogate encoded as UTF-8 bytes, which json reads with surrogatepass.
    b'{"zone": "outdoor", "label": "x\xed\xa0\x80", "resolution": "x\xed\xa0\x80",'
    b' "reason": "x\xed\xa0\x80"}',
    # A NUL, which PostgreSQL's text refuses: a 503 audit_unavailable there, stored on SQLite.
    b'{"zone": "outdoor", "label": "a\\u0000", "resolution": "a\\u0000", "reason": "a\\u0000",'
    b' "grantee": "s\\u0000m"}',
]


@pytest.mark.parametrize("raw", HOSTILE_JSON, ids=range(len(HOSTILE_JSON)))
@pytest.mark.parametrize(("method", "path", "who"), BODIES)
def test_deep_nesting_and_lone_surrogates_are_400_on_every_json_body(home, method, path, who, raw):
    headers = caller(home, who) | {"Content-Type": "application/json"}
    r = home.client.request(method, path, content=raw, headers=headers)
    assert r.status_code == 400, r.text
    assert error_code(r) == "bad_request"


def test_json_within_the_depth_limit_and_proper_surrogate_pairs_are_accepted(home):
    label = "Front door \U0001f6aa"  # a proper pair when escaped: not a lone surrogate
    raw = json.dumps({"zone": "outdoor", "label": label}).encode()  # ensure_ascii escapes it
    assert b"\\ud83d\\udeaa" in raw
    headers = alice(home) | {"Content-Type": "application/json"}
    r = home.client.put("/v1/cameras/c1/front", content=raw, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["label"] == label


@pytest.mark.parametrize(
    ("cameras", "unknown"),
    [(["ghost"], "ghost"), (["front", "ghost"], "ghost"), (["yard"], "yard")],
)
def test_a_grant_naming_a_camera_the_customer_does_not_have_is_400(home, cameras, unknown):
    r = post_grant(home, cameras=cameras)
    assert r.status_code == 400, r.text
    assert error_code(r) == "unknown_camera" and unknown in r.json()["error"]["message"]
    assert home.client.get("/v1/grants", headers=alice(home)).json()["grants"] == []


@pytest.mark.parametrize("cameras", [["*"], ["front"], ["garage"], ["porch"], ["front", "porch"]])
def test_cameras_with_footage_or_a_zone_and_the_wildcard_can_be_granted(home, cameras):
    r = post_grant(home, cameras=cameras)
    assert r.status_code == 201, r.text


def test_a_camera_with_neither_footage_nor_a_zone_cannot_be_zoned(home):
    put = home.client.put("/v1/cameras/c1/ghost", json={"zone": "outdoor"}, headers=alice(home))
    assert put.status_code == 404 and error_code(put) == "not_found"
    # Another customer's camera is refused before existence is looked at.
    other = home.client.put("/v1/cameras/c2/yard", json={"zone": "outdoor"}, headers=alice(home))
    assert other.status_code == 403 and error_code(other) == "not_owner"
    listed = home.client.get("/v1/cameras/c1", headers=alice(home)).json()["cameras"]
    assert [c["camera_id"] for c in listed] == ["front", "garage", "porch"]
    for camera in ("garage", "porch"):  # footage only, and a zone row only
        zone = {"zone": "indoor"}
        r = home.client.put(f"/v1/cameras/c1/{camera}", json=zone, headers=alice(home))
        assert r.status_code == 200, r.text


def test_model_training_cannot_be_granted_while_the_policy_denies_it_to_everyone(home):
    r = post_grant(home, purpose="model_training")
    assert r.status_code == 400, r.text
    assert error_code(r) == "purpose_not_grantable"
    assert home.client.get("/v1/grants", headers=alice(home)).json()["grants"] == []
    for purpose in ("customer_support", "safety_investigation"):
        assert post_grant(home, purpose=purpose).status_code == 201
