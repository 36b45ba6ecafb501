"""Redis is a trust boundary (docs/security.md §3): trusted for counts, never for uptime.

With FOOTGW_REDIS_URL set, detection's counters live in Redis. When they cannot be read (a
closed port, a server that dies mid-run, a wrong password, plain text to a TLS port) staff
footage requests are refused with an audited 503 `detection_unavailable` and /readyz is not
ready and says why; customers reading their own footage are unaffected. AUTH and `rediss://`
work from the URL. Every Redis here is one the test starts itself on an ephemeral port.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.types import Zone
from tests.support.faults import all_events, closed_port, wait_until
from tests.support.legal import approve_legal
from tests.support.server import GatewayEnv, Live, free_port, make_env, start_live

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="no redis-server")

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
LEGAL = {"X-Access-Purpose": "legal_request", "X-Access-Justification": "subpoena 42"}


class RedisServer:
    """A redis-server of this test's own, on a port of its own (never the shared 6379)."""

    def __init__(self, workdir: Path, *args: str, tls_port: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.args = args
        self.tls = tls_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        port_args = ["--port", "0", "--tls-port", str(self.port)] if self.tls else []
        argv = ["redis-server", *(port_args or ["--port", str(self.port)])]
        argv += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *self.args]
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._listening, 10, "redis-server to listen")
        return self

    def _listening(self) -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "redis"
    path.mkdir()
    yield path


def seeded(tmp_path: Path, redis_url: str) -> GatewayEnv:
    tmp_path.mkdir(exist_ok=True)
    env = make_env(tmp_path, {"FOOTGW_REDIS_URL": redis_url})
    env.set_zone("c1", "front", Zone.OUTDOOR)
    env.put_clip("c1", "front", CLIP, b"footage" * 100)
    return env


def legal_headers(live: Live) -> dict[str, str]:
    """Lee's legal headers, the request approved first (contract §13), once per gateway."""
    if not live.state.get("legal_approved"):
        approve_legal(live.client, live.url, live.env.auth, "lee", ["c1"], "subpoena")
        live.state["legal_approved"] = True
    return live.env.auth("lee", "legal", **LEGAL)


def staff_get(live: Live) -> httpx.Response:
    return live.client.get(PATH, headers=legal_headers(live))


def owner_get(live: Live) -> httpx.Response:
    return live.client.get(PATH, headers=live.env.auth("u1", "customer", customer_id="c1"))


def assert_refused(live: Live) -> None:
    """Staff: an audited 503 and no footage; the owner: served; readiness: not ready, why."""
    r = staff_get(live)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "detection_unavailable"
    assert b"footage" not in r.content
    [event] = [
        e
        for e in all_events(live.env.settings.database_url)
        if e["event_id"] == r.headers["X-Audit-Event-ID"]
    ]
    assert (event["decision"], event["reason"], event["status"]) == (
        "deny",
        "detection_unavailable",
        503,
    )
    assert owner_get(live).status_code == 200
    ready = live.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["detection"].startswith("failed: detection_unavailable")


def assert_served(live: Live) -> None:
    r = staff_get(live)
    assert r.status_code == 200, r.text
    assert owner_get(live).status_code == 200
    ready = live.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["detection"] == "ok"


def test_a_closed_port_refuses_staff_and_is_not_ready(tmp_path: Path) -> None:
    with closed_port() as port:
        env = seeded(tmp_path, f"redis://127.0.0.1:{port}/0")
        with start_live(env) as live:
            assert_refused(live)
            listing = live.client.get("/v1/footage/c1/front", headers=legal_headers(live))
            assert listing.status_code == 503
            assert listing.json()["error"]["code"] == "detection_unavailable"


def test_redis_stopped_mid_run_fails_closed_and_recovers(tmp_path: Path, redis_dir: Path) -> None:
    """With AUTH in the URL: served, then refused once our Redis stops, then served again."""
    server = RedisServer(redis_dir, "--requirepass", "s3cret-pw").start()
    try:
        env = seeded(tmp_path, f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
        with start_live(env) as live:
            assert_served(live)
            server.stop()
            assert_refused(live)
            server.start()  # the same port: the client reconnects on the next request
            assert_served(live)
    finally:
        server.stop()


def test_auth_with_a_username_and_a_wrong_password(tmp_path: Path, redis_dir: Path) -> None:
    acl = ["--user", "default", "off", "--user", "footgw", "on", ">gw-pw", "~*", "&*", "+@all"]
    server = RedisServer(redis_dir, *acl).start()
    try:
        good = seeded(tmp_path / "good", f"redis://footgw:gw-pw@127.0.0.1:{server.port}/0")
        with start_live(good) as live:
            assert_served(live)
        bad = seeded(tmp_path / "bad", f"redis://footgw:wrong@127.0.0.1:{server.port}/0")
        with start_live(bad) as live:
            assert_refused(live)
            # The password never reaches the caller or the readiness report.
            assert "wrong" not in live.client.get("/readyz").text
        anonymous = seeded(tmp_path / "anon", f"redis://127.0.0.1:{server.port}/0")
        with start_live(anonymous) as live:
            assert_refused(live)
    finally:
        server.stop()


def write_tls_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the certificate is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "footgw test redis")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "redis.crt", directory / "redis.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_rediss_with_auth(tmp_path: Path, redis_dir: Path) -> None:
    """TLS (verified against the test's CA) and AUTH; plain text to the TLS port fails closed."""
    cert, key = write_tls_pair(redis_dir)
    tls = ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    tls += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    server = RedisServer(redis_dir, *tls, "--requirepass", "tls-pw", tls_port=True).start()
    try:
        url = f"rediss://:tls-pw@127.0.0.1:{server.port}/0?ssl_ca_certs={cert}"
        assert redis.Redis.from_url(url).ping()  # the same URL the gateway is given
        with start_live(seeded(tmp_path / "tls", url)) as live:
            assert_served(live)
        plain = f"redis://:tls-pw@127.0.0.1:{server.port}/0"
        with start_live(seeded(tmp_path / "plain", plain)) as live:
            assert_refused(live)
        unverified = f"rediss://:tls-pw@127.0.0.1:{server.port}/0"  # no CA: the cert is unknown
        with start_live(seeded(tmp_path / "unverified", unverified)) as live:
            assert_refused(live)
    finally:
        server.stop()
