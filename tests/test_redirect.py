"""Redirect delivery (FOOTGW_DELIVERY=redirect) against moto's S3 server, checked like S3 would.

After the decision is committed, the gateway answers 307 to a presigned GET URL that serves
that object, and with a Range that range, for at most 60 s. moto does not check presigned
signatures or expiry itself, so the bucket sits behind tests/support/sigv4_gate.py, which
checks them as S3 does (and whose clock a test can move forward instead of sleeping).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import boto3
import httpx
import pytest

from gateway.audit.store import EventQuery
from gateway.errors import AuditUnavailable
from gateway.types import Zone
from tests.support.server import GatewayEnv, Live, make_env, start_live
from tests.support.sigv4_gate import GatedMotoServer, PresignGate

CLIP = "20261128T101500Z.mp4"
OTHER_CLIP = "20261128T111500Z.mp4"
DATA = bytes(range(256)) * 40  # 10 240 bytes


@dataclass
class Redirecting:
    env: GatewayEnv
    live: Live
    gate: PresignGate

    @property
    def services(self) -> Any:
        return self.live.services

    def owner(self, **headers: str) -> dict[str, str]:
        return self.env.auth("alice", "customer", customer_id="cust-a", **headers)


@pytest.fixture(scope="module")
def gated_s3(aws_env: None) -> Iterator[tuple[str, PresignGate]]:
    server = GatedMotoServer({"testing": "testing"})
    endpoint = server.start()
    try:
        yield endpoint, server.gate
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gateway(
    gated_s3: tuple[str, PresignGate], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redirecting]:
    endpoint, gate = gated_s3
    bucket = f"redirect-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for key, body in (
        (f"cust-a/cam/{CLIP}", DATA),
        (f"cust-a/cam/{OTHER_CLIP}", b"another"),
        (f"cust-b/cam/{CLIP}", b"another customer's clip"),
    ):
        client.put_object(Bucket=bucket, Key=key, Body=body)
    client.close()
    env = make_env(
        tmp_path_factory.mktemp("redirect"),
        {
            "FOOTGW_STORAGE": f"s3://{bucket}",
            "FOOTGW_S3_ENDPOINT_URL": endpoint,
            "FOOTGW_DELIVERY": "redirect",
        },
    )
    env.set_zone("cust-a", "cam", Zone.OUTDOOR)
    live = start_live(env)
    try:
        yield Redirecting(env, live, gate)
    finally:
        live.client.close()
        live.server.stop()


@pytest.fixture
def redirecting(gateway: Redirecting) -> Iterator[Redirecting]:
    """The module's gateway with a fresh gate clock and log; instrumentation undone after."""
    gateway.gate.skew, gateway.gate.seen[:] = 0.0, []
    yield gateway
    for name in ("append_batch", "presign"):
        vars(gateway.services.audit_store).pop(name, None)
        vars(gateway.services.storage).pop(name, None)


def location(response: httpx.Response) -> str:
    assert response.status_code == 307, response.text
    return response.headers["location"]


def test_307_comes_after_the_decision_is_committed(redirecting: Redirecting) -> None:
    services = redirecting.services
    steps: list[str] = []
    append_batch, presign = services.audit_store.append_batch, services.storage.presign

    def recording_append(events: list[dict]) -> list[dict]:
        sealed = append_batch(events)
        steps.extend(f"committed {e['type']}" for e in sealed)
        return sealed

    async def recording_presign(*args: Any, **kwargs: Any) -> str:
        steps.append("presigned")
        return await presign(*args, **kwargs)

    services.audit_store.append_batch = recording_append
    services.storage.presign = recording_presign
    response = redirecting.live.client.get(
        f"/v1/footage/cust-a/cam/{CLIP}", headers=redirecting.owner()
    )
    url = location(response)
    assert steps == ["committed access.decision", "presigned", "committed access.complete"]
    assert response.headers["cache-control"] == "private, no-store"
    assert response.content == b""
    [decision] = services.audit_store.query(
        EventQuery(types=("access.decision",), request_ids=(response.headers["x-request-id"],))
    )
    assert decision["event_id"] == response.headers["x-audit-event-id"]
    assert decision["decision"] == "allow"
    [complete] = services.audit_store.query(
        EventQuery(types=("access.complete",), request_ids=(response.headers["x-request-id"],))
    )
    # S3 sends the bytes: how many is not known here, and the event says so rather than 0.
    assert complete["bytes_sent"] is None
    assert complete["detail"]["delivered_by"] == "s3"
    query = parse_qs(urlsplit(url).query)
    assert int(query["X-Amz-Expires"][0]) <= 60
    assert urlsplit(url).path.endswith(f"/cust-a/cam/{CLIP}")


def test_the_url_serves_that_object_and_nothing_else(redirecting: Redirecting) -> None:
    url = location(
        redirecting.live.client.get(f"/v1/footage/cust-a/cam/{CLIP}", headers=redirecting.owner())
    )
    with httpx.Client() as s3:
        fetched = s3.get(url)
        assert fetched.status_code == 200 and fetched.content == DATA
        assert fetched.headers["cache-control"] == "private, no-store"
        parts = urlsplit(url)
        for other in (f"/cust-a/cam/{OTHER_CLIP}", f"/cust-b/cam/{CLIP}"):
            swapped = urlunsplit(parts._replace(path=parts.path.rsplit("/cust-a/", 1)[0] + other))
            refused = s3.get(swapped)
            assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
        assert s3.head(url).status_code == 403  # the method is signed too
        tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=3600")
        assert s3.get(tampered).status_code == 403


def test_a_ranged_url_serves_that_range_only(redirecting: Redirecting) -> None:
    headers = redirecting.owner(Range="bytes=100-199")
    url = location(redirecting.live.client.get(f"/v1/footage/cust-a/cam/{CLIP}", headers=headers))
    assert "range" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    with httpx.Client() as s3:
        served = s3.get(url, headers={"Range": "bytes=100-199"})
        assert served.status_code == 206 and served.content == DATA[100:200]
        for other in ({"Range": "bytes=0-10239"}, {"Range": "bytes=100-200"}, {}):
            refused = s3.get(url, headers=other)
            assert refused.status_code == 403, other
            assert b"SignatureDoesNotMatch" in refused.content


def test_a_client_that_follows_the_redirect_gets_its_range_and_keeps_its_token(
    redirecting: Redirecting,
) -> None:
    headers = redirecting.owner(Range="bytes=5000-5099")
    response = redirecting.live.client.get(
        f"/v1/footage/cust-a/cam/{CLIP}", headers=headers, follow_redirects=True
    )
    assert response.status_code == 206 and response.content == DATA[5000:5100]
    [seen] = redirecting.gate.seen
    assert seen["range"] == "bytes=5000-5099"
    assert "authorization" not in seen  # the bearer token never reaches the storage host


def test_the_url_is_refused_once_expired(redirecting: Redirecting) -> None:
    url = location(
        redirecting.live.client.get(f"/v1/footage/cust-a/cam/{CLIP}", headers=redirecting.owner())
    )
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    with httpx.Client() as s3:
        redirecting.gate.skew = expires - 2
        assert s3.get(url).status_code == 200
        redirecting.gate.skew = expires + 1
        expired = s3.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_no_url_when_the_decision_cannot_be_committed(redirecting: Redirecting) -> None:
    services = redirecting.services
    presigned: list[Any] = []

    def failing_append(_events: list[dict]) -> list[dict]:
        raise AuditUnavailable("The audit log cannot be written.")

    async def recording_presign(*args: Any, **kwargs: Any) -> str:
        presigned.append(args)
        return "https://never.example/"

    services.audit_store.append_batch = failing_append
    services.storage.presign = recording_presign
    response = redirecting.live.client.get(
        f"/v1/footage/cust-a/cam/{CLIP}", headers=redirecting.owner()
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "audit_unavailable"
    assert "location" not in response.headers and presigned == []


def test_a_denied_request_gets_no_url(redirecting: Redirecting) -> None:
    response = redirecting.live.client.get(
        f"/v1/footage/cust-b/cam/{CLIP}", headers=redirecting.owner()
    )
    assert response.status_code == 403 and "location" not in response.headers
    assert redirecting.gate.seen == []
