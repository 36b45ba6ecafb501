"""The lean lane for play requests (gateway/playlane.py) answers exactly as the full stack does.

Two gateways on one data dir: `live` (the lane, as `serve` runs it) and one built with
`create_app(..., play_lane=False)` (every play request through the router). Each request is
sent to both, and the answers must match: status, every header in order (the ids' values
aside), body, and the request metrics each counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from gateway.api.playback import _call, call_from_scope
from gateway.app import create_app
from gateway.types import Zone
from tests.support.server import Live, LiveServer, hold_lifespan_state, wait_for

CLIP = "20261127T101500Z.mp4"
DATA = bytes(range(256)) * 400
IDS = {"x-request-id", "x-audit-event-id", "date"}  # their values differ from answer to answer
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def pair(live: Live) -> Iterator[tuple[Live, Live]]:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, DATA)
    app = create_app(live.env.settings, play_lane=False)
    state = hold_lifespan_state(app)
    server = LiveServer(app).start()
    full = Live(live.env, server, httpx.Client(base_url=server.url, timeout=30.0), state)
    try:
        yield live, full
    finally:
        full.close()


def alice(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def start(live: Live) -> dict[str, str]:
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    r = live.client.post("/v1/playback", json=body, headers=alice(live))
    assert r.status_code == 201, r.text
    found: dict[str, str] = r.json()
    return found


def same_answer(lean: httpx.Response, full: httpx.Response) -> None:
    assert lean.status_code == full.status_code, (lean.text, full.text)
    assert [k for k, _ in lean.headers.multi_items()] == [k for k, _ in full.headers.multi_items()]
    for (name, ours), (_, theirs) in zip(
        lean.headers.multi_items(), full.headers.multi_items(), strict=True
    ):
        if name not in IDS:
            assert ours == theirs, name
    assert HEX_ID.fullmatch(lean.headers["x-request-id"])
    assert lean.headers["x-request-id"] != full.headers["x-request-id"]
    assert lean.content == full.content


def both(pair: tuple[Live, Live], method: str, url: str, **kwargs: object) -> httpx.Response:
    lean, full = pair
    ours = lean.client.request(method, url, **kwargs)  # type: ignore[arg-type]
    theirs = full.client.request(method, url, **kwargs)  # type: ignore[arg-type]
    same_answer(ours, theirs)
    return ours


def test_every_answer_of_a_play_url_is_the_full_stacks(pair):
    lean, _full = pair
    url = start(lean)["url"]
    etag = lean.client.head(url).headers["etag"]
    answers = [
        both(pair, "GET", url),  # 200
        both(pair, "HEAD", url),
        both(pair, "GET", url, headers={"Range": "bytes=10-19"}),  # 206
        both(pair, "HEAD", url, headers={"Range": "bytes=10-19"}),
        both(pair, "GET", url, headers={"Range": "bytes=-5"}),
        both(pair, "GET", url, headers={"Range": "bytes=10-19", "If-Range": etag}),
        both(pair, "GET", url, headers={"Range": "bytes=10-19", "If-Range": '"other"'}),
        both(pair, "GET", url, headers={"If-None-Match": etag}),  # 304
        both(pair, "GET", url, headers={"If-Match": '"other"'}),  # 412
        both(pair, "GET", url, headers={"Range": f"bytes={len(DATA)}-"}),  # 416
        both(pair, "GET", url, headers={"X-Request-ID": "caller-chosen-id-1"}),
        both(pair, "GET", "/v1/play/" + "A" * 43),  # 404 playback_not_found
        both(pair, "GET", "/v1/play/short"),
        both(pair, "HEAD", "/v1/play/" + "A" * 43),
        both(pair, "POST", url),  # 405: not the lane's
        both(pair, "GET", url + "/more"),  # 404: no route
        both(pair, "GET", url, headers={"Cookie": "__Host-footgw_session=nothing"}),
    ]
    statuses = [a.status_code for a in answers]
    assert statuses[:11] == [200, 200, 206, 206, 206, 206, 200, 304, 412, 416, 200]
    assert statuses[11:] == [404, 404, 404, 405, 404, 200]


def test_a_deleted_clip_and_an_ended_session_are_answered_alike(pair):
    lean, _full = pair
    session = start(lean)
    url = session["url"]
    both(pair, "GET", url, headers={"Range": "bytes=0-9"})
    footage = Path(lean.env.settings.storage.removeprefix("file://"))
    (footage / "c1" / "front" / CLIP).unlink()
    gone = both(pair, "GET", url, headers={"Range": "bytes=0-9"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    lean.env.put_clip("c1", "front", CLIP, DATA)
    ended = lean.client.delete(f"/v1/playback/{session['session_id']}", headers=alice(lean))
    assert ended.status_code == 204
    # The other gateway is a replica here: it sees the end within its second (contract §12).
    wait_for(lambda: pair[1].client.get(url).status_code == 403, timeout=2)
    refused = both(pair, "GET", url)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "playback_ended"


def samples(live: Live) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request metrics of one gateway: counts by route and status, latencies counted."""
    found = {}
    for metric in live.services.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_sum", "_bucket", "_created")):  # timings differ
                continue
            if metric.name.startswith(("footgw_http", "footgw_footage_bytes")):
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_lane_counts_what_the_full_stack_counts(pair):
    lean, full = pair
    url = start(lean)["url"]
    before = (samples(lean), samples(full))
    for headers in ({}, {"Range": "bytes=0-99"}, {"Range": "bytes=999999-"}):
        both(pair, "GET", url, headers=headers)
    both(pair, "GET", "/v1/play/" + "B" * 43)

    def delta(live: Live, start: dict) -> dict:
        now = samples(live)
        return {k: v - start.get(k, 0.0) for k, v in now.items() if v != start.get(k, 0.0)}

    ours, theirs = delta(lean, before[0]), delta(full, before[1])
    assert ours == theirs
    key = ("footgw_http_requests_total", (("route", "/v1/play/"), ("status", "206")))
    assert ours[key] == 1


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"range", b"bytes=0-9"), (b"user-agent", b"vlc/3")],
        [(b"range", b"bytes=0-9"), (b"range", b"bytes=5-6")],  # the first, as Headers.get
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")],
        [
            (b"x-access-purpose", b"customer_support"),
            (b"x-access-justification", b"TICKET-1 \xe9"),
            (b"if-match", b'"a"'),
            (b"if-none-match", b'"b"'),
            (b"if-range", b'"c"'),
        ],
    ],
)
def test_the_lane_reads_a_play_request_as_the_route_does(headers):
    scope = {
        "type": "http",
        "method": "HEAD",
        "path": "/v1/play/x",
        "headers": headers,
        "client": ("10.0.0.7", 5555),
        "state": {"request_id": "f" * 32, "client_request_id": "mine-12345"},
    }
    assert call_from_scope(scope) == _call(Request(scope))
    assert call_from_scope({**scope, "client": None, "state": {}}) == _call(
        Request({**scope, "client": None, "state": {}})
    )
