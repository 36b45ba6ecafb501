"""Path and key injection over real sockets, beyond tests/test_gateway_attacks.py's escapes.

Encodings of valid ids, overlong and IIS-style escapes, double and triple encoding, Unicode
look-alikes (raw and escaped), path parameters and dot segments; and query parameters that
would change what S3 returns (?versionId=, ?response-content-type=, ...), which must never reach
S3. Each is asserted with its status, zero footage bytes, zero storage calls (counted at the
gateway's storage boundary, and for S3 at botocore's send hook) and a consistent audit trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from gateway.storage import beneath
from tests.support.faults import (
    CountingStorage,
    assert_no_footage,
    count_storage,
    services_of,
    trace,
)
from tests.support.server import Live, make_env, raw_get, start_live
from tests.support.skips import skip_unsupported

CLIP = "20261127T101500Z.mp4"
SECRET = b"NURSERY-FOOTAGE-" * 4096
OLD_SECRET = b"DELETED-VERSION-" * 4096

ENCODED = [
    "/v1/footage/c%31/front/" + CLIP,  # an escape that decodes to a valid id is still refused
    "/v1/footage/c1/front/20261127T101500Z%2Emp4",
    "/v1/footage/c1/front/%32%30261127T101500Z.mp4",
    "/v1/footage/c1/front/%c0%ae%c0%ae%c0%afoutside.mp4",  # overlong UTF-8 "../"
    "/v1/footage/c1/front/%u002e%u002e%u2215outside.mp4",  # IIS-style %u escapes
    "/v1/footage/c1/front/..%252f..%252foutside.mp4",  # double encoding
    "/v1/footage/c1/front/%25252e%25252e%25252foutside.mp4",  # triple encoding
    "/v1/footage/c1/front/%ef%bc%8e%ef%bc%8e%ef%bc%8foutside.mp4",  # fullwidth "../"
    "/v1/footage/c1/front/20261127T101500Z.mp4%ef%b8%8f",  # a variation selector
    "/v1/footage/%d1%811/front/" + CLIP,  # Cyrillic "с1"
    "/v1/footage/c%ef%bc%91/front/" + CLIP,  # fullwidth "１": NFKC would make it "c1"
    "/v1/footage/c1/front/" + CLIP + "%00",
    "/v1/footage/c1/front/" + CLIP + "%0d%0aX-Injected:%201",
    "/v1/footage/c1/front%3f/" + CLIP,
    "/v1/footage/c1/front/" + CLIP + "%23",
]
RAW: list[bytes] = [
    b"/v1/footage/c1/front/..;/..;/outside.mp4",
    b"/v1/footage/c1/front\\..\\..\\outside.mp4",
    b"/v1/footage/c1/front/" + CLIP.encode() + b".",
    b"/v1/footage/c1/front/20261127t101500z.mp4",
    b"/v1/footage/c1/front/" + CLIP.encode() + b";type=a",
    b"/v1/footage/c1//front/" + CLIP.encode(),
    b"/v1/footage//c1/front/" + CLIP.encode(),
    b"/v1/footage/c1/./front/" + CLIP.encode(),
    b"/v1/footage/c1/front/./" + CLIP.encode(),
    b"/v1/footage/./c1/front/" + CLIP.encode(),
    b"/v1/footage/c1/front/" + CLIP.encode() + b"/",
    b"/v1/footage/c1/fr\xc3\xb6nt/" + CLIP.encode(),  # raw UTF-8
    b"/v1/footage/c\xef\xbc\x91/front/" + CLIP.encode(),  # raw fullwidth digit
    b"/v1/footage/\xd1\x811/front/" + CLIP.encode(),  # raw Cyrillic
    b"/v1/footage/c1/front/" + CLIP.encode() + b"\x00",
    b"/v1/footage/c1/front/" + CLIP.encode() + b"\t",
]
PATHS = [p.encode() for p in ENCODED] + RAW


def assert_refused_untouched(
    live: Live, storage: CountingStorage, path: bytes, s3_sent: list[str] | None = None
) -> None:
    token = live.env.token("alice", "customer", customer_id="c1")
    status, headers, body = raw_get(live.url, path, token)
    assert status in (400, 404), (path, status)
    assert_no_footage(httpx.Response(status, content=body), SECRET)
    assert storage.stats == [] and storage.reads == [], path
    if s3_sent is not None:
        assert s3_sent == [], path
    if "x-request-id" not in headers:
        return  # refused by the HTTP server itself, before the app saw it
    events = trace(live.env.settings.database_url, headers["x-request-id"])
    if "x-audit-event-id" in headers:  # refused by the footage flow: one recorded denial
        assert [e["event_id"] for e in events] == [headers["x-audit-event-id"]]
        assert events[0]["decision"] == "deny" and events[0]["reason"] == "bad_request"
    else:  # refused by the router: no clip was ever named
        assert events == []


@pytest.fixture(scope="module")
def file_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = make_env(tmp_path_factory.mktemp("files"))
    env.put_clip("c1", "front", CLIP, SECRET)
    (env.root / "outside.mp4").write_bytes(SECRET)
    with start_live(env) as running:
        running.counting = count_storage(running)
        yield running


@pytest.fixture
def file_live(file_gateway: Live) -> tuple[Live, CountingStorage]:
    storage: CountingStorage = file_gateway.counting  # type: ignore[attr-defined]
    storage.reset()
    return file_gateway, storage


@pytest.mark.parametrize("path", PATHS, ids=[p.decode("latin-1")[12:60] for p in PATHS])
def test_injected_paths_never_reach_file_storage(file_live, path: bytes) -> None:
    live, storage = file_live
    assert_refused_untouched(live, storage, path)


def test_query_parameters_never_rename_the_clip(file_live) -> None:
    live, storage = file_live
    headers = live.env.auth("alice", "customer", customer_id="c1")
    r = live.client.get(
        f"/v1/footage/c1/front/{CLIP}",
        params={"customer_id": "c2", "camera_id": "../..", "clip_id": "outside.mp4", "path": "/"},
        headers=headers,
    )
    assert r.status_code == 200 and r.content == SECRET
    assert storage.reads == [(f"c1/front/{CLIP}", 0, len(SECRET) - 1)]
    event = trace(live.env.settings.database_url, r.headers["x-request-id"])[0]
    assert (event["customer_id"], event["camera_id"], event["clip_id"]) == ("c1", "front", CLIP)


# --- symlinks planted in the footage tree (docs/security.md §3) ---------------------------------

VICTIM = b"ANOTHER-CUSTOMERS-NURSERY-" * 2048


@pytest.fixture(params=["openat2-cached", "openat2", "per-component"])
def resolving(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live gateway's file store resolving paths each way open_beneath can."""
    if request.param.startswith("openat2") and not beneath.HAS_OPENAT2:
        skip_unsupported("this kernel has no openat2")
    mechanism = beneath.open_per_component if request.param == "per-component" else beneath.openat2
    monkeypatch.setattr(beneath, "_OPEN", mechanism)
    if request.param != "openat2-cached":  # the others open in a worker thread only
        monkeypatch.setattr(beneath, "_OPEN_CACHED", None)


def _plant(live: Live, level: str, target: str) -> tuple[str, Path]:
    """A fresh attacker customer whose tree holds a symlink at `level` leading to a victim's
    clip: another customer's (inside the footage root) or a tree outside it."""
    attacker, victim = f"a{uuid.uuid4().hex[:8]}", f"v{uuid.uuid4().hex[:8]}"
    footage = live.env.root / "footage"
    if target == "inside":
        live.env.put_clip(victim, "cam1", CLIP, VICTIM)
        victim_customer = footage / victim
    else:
        victim_customer = live.env.root / f"outside-{victim}"
        (victim_customer / "cam1").mkdir(parents=True)
        (victim_customer / "cam1" / CLIP).write_bytes(VICTIM)
    if level == "customer":
        (footage / attacker).symlink_to(victim_customer, target_is_directory=True)
    elif level == "camera":
        (footage / attacker).mkdir()
        (footage / attacker / "cam1").symlink_to(victim_customer / "cam1")
    else:
        (footage / attacker / "cam1").mkdir(parents=True)
        (footage / attacker / "cam1" / CLIP).symlink_to(victim_customer / "cam1" / CLIP)
    return attacker, victim_customer / "cam1" / CLIP


@pytest.mark.parametrize("target", ["inside", "outside"])
@pytest.mark.parametrize("level", ["customer", "camera", "clip"])
def test_a_symlink_in_the_tree_reads_lists_and_deletes_nothing(
    file_live, resolving: None, level: str, target: str
) -> None:
    live, _ = file_live
    attacker, victim = _plant(live, level, target)
    headers = live.env.auth("mallory", "customer", customer_id=attacker)
    clip_path = f"/v1/footage/{attacker}/cam1/{CLIP}"
    got = live.client.get(clip_path, headers=headers)
    assert got.status_code == 404, (level, target, got.status_code)
    assert_no_footage(got, VICTIM)
    head = live.client.head(clip_path, headers=headers)
    assert head.status_code == 404, (level, target, head.status_code)
    assert head.headers.get("content-length") != str(len(VICTIM))
    listed = live.client.get(f"/v1/footage/{attacker}/cam1", headers=headers)
    assert listed.status_code in (200, 404)
    assert CLIP not in listed.text
    deleted = live.client.delete(clip_path, headers=headers)
    assert deleted.status_code == 404, (level, target, deleted.status_code)
    assert victim.read_bytes() == VICTIM  # the victim's clip is still there, untouched


# --- S3: keys and query parameters ---------------------------------------------------------------

S3_QUERIES: dict[str, dict[str, str]] = {
    "versionId": {"versionId": "{old}"},
    "response-content-type": {"response-content-type": "text/html"},
    "response-content-disposition": {
        "response-content-disposition": "attachment; filename=evil.html"
    },
    "response-cache-control": {"response-cache-control": "public, max-age=31536000"},
    "response-expires": {"response-expires": "Thu, 01 Dec 2094 16:00:00 GMT"},
    "partNumber": {"partNumber": "1"},
    "presign-looking": {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKIA/20261128/us-east-1/s3/aws4_request",
        "X-Amz-Signature": "00",
    },
    "sub-resources": {"acl": "", "tagging": "", "torrent": "", "uploads": ""},
    "everything at once": {
        "versionId": "{old}",
        "response-content-type": "text/html",
        "response-cache-control": "public",
    },
}


def _record_s3_requests(live: Live) -> list[str]:
    sent: list[str] = []

    def hook(request: Any, **_: Any) -> None:
        sent.append(str(request.url))

    services_of(live).storage.client.meta.events.register("before-send.s3", hook)
    return sent


@pytest.fixture(scope="module")
def s3_versioned(
    tmp_path_factory: pytest.TempPathFactory, s3_server: str
) -> Iterator[tuple[Live, Live, str, list[str]]]:
    """A versioned bucket whose clip has an older version; gateways in proxy and redirect mode."""
    bucket = f"versioned-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = f"footage/c1/front/{CLIP}"
    old = s3.put_object(Bucket=bucket, Key=key, Body=OLD_SECRET)["VersionId"]
    s3.put_object(Bucket=bucket, Key=key, Body=SECRET)
    s3.close()
    lives = []
    for delivery in ("proxy", "redirect"):
        env = make_env(
            tmp_path_factory.mktemp(delivery),
            {
                "FOOTGW_STORAGE": f"s3://{bucket}/footage",
                "FOOTGW_S3_ENDPOINT_URL": s3_server,
                "FOOTGW_DELIVERY": delivery,
            },
        )
        lives.append(start_live(env))
    proxy = lives[0]
    proxy.counting = count_storage(proxy)
    sent = _record_s3_requests(proxy)
    try:
        yield proxy, lives[1], old, sent
    finally:
        for running in lives:
            running.close()


def test_injected_paths_never_reach_s3(s3_versioned) -> None:
    live, _, _, sent = s3_versioned
    storage: CountingStorage = live.counting  # type: ignore[attr-defined]
    storage.reset()
    sent.clear()
    for path in PATHS:
        assert_refused_untouched(live, storage, path, sent)


@pytest.mark.parametrize("name", S3_QUERIES)
def test_query_parameters_that_would_change_what_s3_returns_are_ignored(
    s3_versioned, name: str
) -> None:
    live, _, old_version, sent = s3_versioned
    sent.clear()
    params = {k: v.format(old=old_version) for k, v in S3_QUERIES[name].items()}
    headers = live.env.auth("alice", "customer", customer_id="c1")
    r = live.client.get(f"/v1/footage/c1/front/{CLIP}", params=params, headers=headers)
    assert r.status_code == 200 and r.content == SECRET  # the current version, as stored
    assert OLD_SECRET[:32] not in r.content
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["cache-control"] == "private, no-store"
    assert "content-disposition" not in r.headers and "expires" not in r.headers
    assert sent, "the gateway did read from S3"
    for url in sent:  # what the gateway asked S3 for: none of the caller's parameters
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        assert not set(query) & set(params), url


def test_a_presigned_redirect_carries_none_of_the_callers_parameters(s3_versioned) -> None:
    _, live, old_version, _ = s3_versioned
    params = {
        "versionId": old_version,
        "response-content-type": "text/html",
        "response-cache-control": "public",
    }
    headers = live.env.auth("alice", "customer", customer_id="c1")
    r = live.client.get(f"/v1/footage/c1/front/{CLIP}", params=params, headers=headers)
    assert r.status_code == 307
    location = r.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert "versionId" not in query and "response-content-type" not in query
    assert query["response-cache-control"] == ["private, no-store"]
    assert urlsplit(location).path.endswith(f"/footage/c1/front/{CLIP}")
    fetched = httpx.get(location)
    assert fetched.content == SECRET
