"""Range abuse over real HTTP: thousands of ranges, overlaps, huge headers, absurd numbers.

The gateway never builds multipart responses, so no Range header can make it read a clip more
than once or send more than the clip: each answer here is asserted in bounded time, with at most
one storage read (counted at the storage boundary of the running gateway), exactly the promised
bytes, bounded memory (tracemalloc over the request), and the decision event it left.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from gateway.server import Limits
from tests.support.faults import CountingStorage, count_storage, trace, wait_for_complete
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
SIZE = 256 * 1024
DATA = bytes(range(256)) * (SIZE // 256)
BOUND_SECONDS = 5.0


@pytest.fixture(scope="module")
def ranged_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = make_env(tmp_path_factory.mktemp("ranges"))
    env.put_clip("c1", "front", CLIP, DATA)
    # The server refuses a head over 16 KiB (431) before the app sees it; lifted here, so
    # that these prove the app's own bound, whatever server runs it.
    with start_live(env, Limits(max_header_bytes=16 * 1024 * 1024)) as running:
        running.counting = count_storage(running)
        yield running


@pytest.fixture
def ranged(ranged_gateway: Live) -> tuple[Live, CountingStorage]:
    storage: CountingStorage = ranged_gateway.counting  # type: ignore[attr-defined]
    storage.reset()
    return ranged_gateway, storage


def get(live: Live, range_header: str, method: str = "GET") -> httpx.Response:
    headers = live.env.auth("alice", "customer", customer_id="c1", Range=range_header)
    started = time.monotonic()
    r = live.client.request(method, PATH, headers=headers)
    assert time.monotonic() - started < BOUND_SECONDS
    return r


def decision_of(live: Live, r: httpx.Response) -> dict:
    events = trace(live.env.settings.database_url, r.headers["x-request-id"])
    decisions = [e for e in events if e["type"] == "access.decision"]
    assert [e["event_id"] for e in decisions] == [r.headers["x-audit-event-id"]]
    return decisions[0]


WHOLE_CLIP = {
    "three thousand single-byte ranges": "bytes=" + ",".join(f"{i}-{i}" for i in range(3000)),
    "ninety-nine overlapping open ranges": "bytes=" + ",".join(["0-"] * 99),
    "ninety-nine copies of the whole clip": "bytes=" + ",".join([f"0-{SIZE - 1}"] * 99),
    "two overlapping ranges": "bytes=0-100,50-150",
    "a range and its suffix": "bytes=0-10,-10",
    "a thousand suffixes": "bytes=" + ",".join(["-1"] * 1000),
    "a 1 MiB header": "bytes=" + "0-0," * (256 * 1024),
    "a million commas": "bytes=0-1" + "," * 1_000_000,
    "another unit": "items=0-10",
    "bytes without a set": "bytes=",
}


@pytest.mark.parametrize("name", WHOLE_CLIP)
def test_abusive_ranges_get_the_whole_clip_once(ranged, name: str) -> None:
    live, storage = ranged
    r = get(live, WHOLE_CLIP[name])
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["content-length"] == str(SIZE) and "content-range" not in r.headers
    assert storage.reads == [(f"c1/front/{CLIP}", 0, SIZE - 1)]  # one read, of the clip once
    event = decision_of(live, r)
    assert event["decision"] == "allow" and event["status"] == 200 and event["range"] is None
    complete = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert complete["bytes_sent"] == SIZE and complete["detail"]["completed"] is True


SINGLE = {
    "a suffix longer than the clip": ("bytes=-" + "9" * 30, 0, SIZE - 1),
    "an end far past the clip": ("bytes=10-" + "9" * 30, 10, SIZE - 1),
    "the last byte": (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
    "a 4000-digit end": ("bytes=0-" + "9" * 4000, 0, SIZE - 1),
    "tabs and spaces inside": ("bytes \t=\t 5-9", 5, 9),
    "empty list elements around it": ("bytes=,,5-9,,", 5, 9),
}


@pytest.mark.parametrize("name", SINGLE)
def test_single_ranges_read_only_their_bytes(ranged, name: str) -> None:
    live, storage = ranged
    header, start, end = SINGLE[name]
    r = get(live, header)
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert r.content == DATA[start : end + 1]
    assert storage.reads == [(f"c1/front/{CLIP}", start, end)]
    assert decision_of(live, r)["range"] == f"bytes={start}-{end}"


UNSATISFIABLE = {
    "ninety-nine ranges past the end": "bytes=" + ",".join([f"{SIZE}-"] * 99),
    "a start past the end": f"bytes={SIZE}-{SIZE + 10}",
    "a zero suffix": "bytes=-0",
    "a huge start": "bytes=" + "9" * 40 + "-",
}


@pytest.mark.parametrize("name", UNSATISFIABLE)
def test_unsatisfiable_ranges_are_416_without_reading(ranged, name: str) -> None:
    live, storage = ranged
    r = get(live, UNSATISFIABLE[name])
    assert r.status_code == 416 and r.json()["error"]["code"] == "range_not_satisfiable"
    assert r.headers["content-range"] == f"bytes */{SIZE}"
    assert DATA[:64] not in r.content
    assert storage.reads == [] and len(storage.stats) == 1
    event = decision_of(live, r)
    assert event["status"] == 416
    events = trace(live.env.settings.database_url, r.headers["x-request-id"])
    assert [e["type"] for e in events] == ["access.decision"]  # nothing was streamed


def test_head_with_thousands_of_ranges_reads_nothing(ranged) -> None:
    live, storage = ranged
    r = get(live, WHOLE_CLIP["three thousand single-byte ranges"], method="HEAD")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(SIZE)
    assert storage.reads == []


def test_two_range_headers_still_read_at_most_once(ranged) -> None:
    live, storage = ranged
    headers = [
        ("Authorization", live.env.auth("alice", "customer", customer_id="c1")["Authorization"]),
        ("Range", "bytes=0-9"),
        ("Range", "bytes=100-199"),
    ]
    r = live.client.get(PATH, headers=headers)
    assert r.status_code in (200, 206)
    if r.status_code == 206:
        first, last = r.headers["content-range"].split()[1].split("/")[0].split("-")
        assert r.content == DATA[int(first) : int(last) + 1]
    assert len(storage.reads) == 1


def test_a_denied_caller_with_abusive_ranges_touches_no_storage(ranged) -> None:
    live, storage = ranged
    headers = live.env.auth("bob", "customer", customer_id="c2", Range=WHOLE_CLIP["a 1 MiB header"])
    r = live.client.get(PATH, headers=headers)
    assert r.status_code == 403 and DATA[:64] not in r.content
    assert storage.reads == [] and storage.stats == []  # authorization before existence


def test_range_abuse_takes_bounded_memory(ranged) -> None:
    live, _ = ranged
    header = WHOLE_CLIP["a 1 MiB header"]
    get(live, "bytes=0-0")  # warm up imports and caches outside the measurement
    tracemalloc.start()
    try:
        r = get(live, header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    # The header is 1 MiB and is copied a few times on its way in (client encode, server
    # parse, latin-1 decode); nothing may scale with the 262,144 ranges it holds.
    assert peak < 24 * 1024 * 1024, peak
