"""Storage faults: unreachable before a stream (502, nothing sent) and failing during one
(a truncated body and `access.complete` with `completed: false`), then recovery, no restart.

S3 goes through a loopback TCP proxy (tests.support.faults.TcpFaultProxy) that can refuse or
cut connections, in front of moto's server; the file store is truncated under an open stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.support.faults import (
    TcpFaultProxy,
    assert_no_footage,
    closed_port,
    fault_proxy,
    trace,
    wait_for_complete,
)
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
MIB = 1024 * 1024


def pattern(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def owner(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def decision(live: Live, response: httpx.Response) -> dict:
    events = trace(live.env.settings.database_url, response.headers["x-request-id"])
    found = [e for e in events if e["type"] == "access.decision"]
    assert len(found) == 1
    return found[0]


def assert_storage_unavailable(live: Live, r: httpx.Response, data: bytes) -> None:
    assert r.status_code == 502 and r.json()["error"]["code"] == "storage_unavailable"
    assert_no_footage(r, data)
    event = decision(live, r)
    assert event["event_id"] == r.headers["x-audit-event-id"] and event["status"] == 502
    events = trace(live.env.settings.database_url, r.headers["x-request-id"])
    assert [e["type"] for e in events] == ["access.decision"]  # nothing was streamed


def stream_until_broken(live: Live, **headers: str) -> tuple[httpx.Response, int, bool]:
    """GET the clip, reading everything the server sends; (response, bytes, ended cleanly)."""
    received = 0
    with live.client.stream("GET", PATH, headers={**owner(live), **headers}) as r:
        try:
            for chunk in r.iter_raw():
                received += len(chunk)
        except httpx.HTTPError:  # the server hung up before Content-Length was met
            return r, received, False
    return r, received, True


def test_s3_at_a_closed_port_is_502_before_any_byte(tmp_path) -> None:
    with closed_port() as port:
        env = make_env(
            tmp_path,
            {
                "FOOTGW_STORAGE": "s3://nowhere/footage",
                "FOOTGW_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            },
        )
        live = start_live(env)
        try:
            r = live.client.get(PATH, headers=owner(live))
            assert_storage_unavailable(live, r, b"")
            ready = live.client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["storage"] != "ok"
        finally:
            live.client.close()
            live.server.stop()


@pytest.fixture
def s3_behind_proxy(tmp_path, s3_bucket) -> Iterator[tuple[Live, TcpFaultProxy, bytes]]:
    endpoint, bucket = s3_bucket
    data = pattern(12 * MIB)
    with fault_proxy(endpoint) as proxy:
        env = make_env(
            tmp_path,
            {"FOOTGW_STORAGE": f"s3://{bucket}/footage", "FOOTGW_S3_ENDPOINT_URL": proxy.url},
        )
        env.put_clip("c1", "front", CLIP, data)
        live = start_live(env)
        try:
            yield live, proxy, data
        finally:
            live.client.close()
            live.server.stop()


def test_s3_gone_before_a_stream_is_502_then_recovers(s3_behind_proxy) -> None:
    live, proxy, data = s3_behind_proxy
    assert live.client.get(PATH, headers=owner(live)).content == data  # control
    proxy.mode = "refuse"
    proxy.drop_all()  # the pooled keep-alive connection dies with the backend
    r = live.client.get(PATH, headers=owner(live))
    assert_storage_unavailable(live, r, data)
    head = live.client.head(PATH, headers=owner(live))
    assert head.status_code == 502
    proxy.mode = "pass"
    again = live.client.get(PATH, headers=owner(live))
    assert again.status_code == 200 and again.content == data  # no restart needed


def test_s3_dying_mid_stream_truncates_and_records_completed_false(s3_behind_proxy) -> None:
    live, proxy, data = s3_behind_proxy
    proxy.cut_after = 3 * MIB
    proxy.mode = "cut"
    proxy.drop_all()
    r, received, clean = stream_until_broken(live)
    assert r.status_code == 200 and r.headers["content-length"] == str(len(data))
    assert not clean and received < len(data)
    assert proxy.cuts >= 1
    complete = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert complete["detail"]["completed"] is False
    assert received <= complete["bytes_sent"] < len(data)
    assert decision(live, r)["decision"] == "allow"
    proxy.mode = "pass"
    proxy.drop_all()
    r, received, clean = stream_until_broken(live)
    assert clean and received == len(data)
    done = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert done["detail"]["completed"] is True and done["bytes_sent"] == len(data)


def test_s3_dying_mid_range_truncates_the_206(s3_behind_proxy) -> None:
    live, proxy, _ = s3_behind_proxy
    proxy.cut_after = 2 * MIB
    proxy.mode = "cut"
    proxy.drop_all()
    r, received, clean = stream_until_broken(live, Range=f"bytes={MIB}-{10 * MIB - 1}")
    assert r.status_code == 206 and not clean and received < 9 * MIB
    complete = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert (
        complete["detail"]["completed"] is False
        and complete["range"] == f"bytes={MIB}-{10 * MIB - 1}"
    )


@pytest.fixture
def big_file_clip(live: Live) -> tuple[Live, bytes]:
    data = pattern(48 * MIB)
    live.env.put_clip("c1", "front", CLIP, data)
    return live, data


def test_a_file_clip_truncated_mid_stream_ends_short_and_says_so(big_file_clip) -> None:
    live, data = big_file_clip
    path = live.env.root / "footage" / "c1" / "front" / CLIP
    received = 0
    clean = True
    with live.client.stream("GET", PATH, headers=owner(live)) as r:
        chunks = r.iter_raw()
        received += len(next(chunks))  # the stream is open and the server is mid-clip
        os.truncate(path, 24 * MIB)  # the recorder rewrote the file under us
        try:
            for chunk in chunks:
                received += len(chunk)
        except httpx.HTTPError:
            clean = False
    assert r.status_code == 200 and not clean and received < len(data)
    complete = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert complete["detail"]["completed"] is False
    assert complete["bytes_sent"] == received <= 24 * MIB


def test_a_file_clip_removed_mid_stream_is_finished_from_the_open_file(big_file_clip) -> None:
    # POSIX keeps an unlinked file's bytes for whoever holds it open: the stream in flight
    # completes as promised (and says so); the next request finds nothing.
    live, data = big_file_clip
    received = 0
    with live.client.stream("GET", PATH, headers=owner(live)) as r:
        chunks = r.iter_raw()
        received += len(next(chunks))
        deleted = live.client.delete(PATH, headers=owner(live))
        assert deleted.status_code == 204
        for chunk in chunks:
            received += len(chunk)
    assert received == len(data)
    complete = wait_for_complete(live.env.settings.database_url, r.headers["x-request-id"])
    assert complete["detail"]["completed"] is True
    gone = live.client.get(PATH, headers=owner(live))
    assert gone.status_code == 404 and data[:64] not in gone.content
