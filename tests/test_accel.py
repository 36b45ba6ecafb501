"""FOOTGW_DELIVERY=accel: the gateway audits, nginx sends the file (X-Accel-Redirect).

The nginx tests run deploy/nginx-accel.conf itself, only its addresses and paths swapped for
this machine's, in front of a real gateway on a real socket; they skip where nginx is missing
(`make test` installs it with apt where it can).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.delivery import accel_path
from gateway.errors import AuditUnavailable
from gateway.settings import DEFAULT_ACCEL_PREFIX
from gateway.types import ClipRef
from tests.support.faults import services_of, trace
from tests.support.server import GatewayEnv, Live, free_port, make_env, start_live, wait_for
from tests.test_pipeline_open_clips import ClosingCount, counted, open_paths

REPO = Path(__file__).resolve().parent.parent
DEPLOY_CONF = REPO / "deploy" / "nginx-accel.conf"
CLIP = "20261128T101500Z.mp4"
PATH = f"/v1/footage/cust-a/cam/{CLIP}"
DATA = bytes(range(256)) * 4096  # 1 MiB: nginx sends it with sendfile
REQUIRED = ("x-audit-event-id", "x-request-id", "cache-control", "etag", "content-type")


def nginx_binary() -> str | None:
    """nginx on PATH or where Debian puts it (/usr/sbin is not on a normal user's PATH)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def local_conf(gateway_url: str, footage: Path, prefix: Path, port: int) -> str:
    """deploy/nginx-accel.conf with this machine's addresses and paths; each swap must apply."""
    text = DEPLOY_CONF.read_text()
    upstream = gateway_url.removeprefix("http://")
    temp = "".join(
        f"    {kind}_temp_path {prefix}/tmp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    swaps = {
        "worker_processes auto;": "worker_processes 1;",
        "pid /run/nginx-footage-gateway.pid;": f"pid {prefix}/nginx.pid;",
        "access_log /var/log/nginx/footage-gateway.access.log;": f"access_log {prefix}/access.log;",
        "error_log /var/log/nginx/footage-gateway.error.log warn;": (
            f"error_log {prefix}/error.log warn;"
        ),
        "server 127.0.0.1:8080;": f"server {upstream};",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "alias /var/lib/footage-gateway/footage/;": f"alias {footage}/;",
        "http {\n": "http {\n" + temp,
    }
    for old, new in swaps.items():
        assert text.count(old) == 1, f"deploy/nginx-accel.conf no longer has {old!r}"
        text = text.replace(old, new)
    # Workers must read pytest's 0700 directories; root's workers would otherwise be nobody.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"{user}daemon off;\nmaster_process on;\n{text}"


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # by its own pid, never by name
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(binary: str, conf: str, prefix: Path, port: int) -> Nginx:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(conf)
    log = prefix / "stderr.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    nginx = Nginx(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited at start-up:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(nginx.url + "/healthz", timeout=1.0)
            return nginx
        time.sleep(0.05)
    nginx.stop()
    raise RuntimeError("nginx did not start")


@dataclass
class Stack:
    env: GatewayEnv
    live: Live
    nginx: Nginx
    client: httpx.Client

    def owner(self, **headers: str) -> dict[str, str]:
        return self.env.auth("alice", "customer", customer_id="cust-a", **headers)

    def events(self, response: httpx.Response) -> dict[str, dict[str, Any]]:
        """The request's audit events by type (each request leaves at most one of each)."""
        found = trace(self.env.settings.database_url, response.headers["x-request-id"])
        return {event["type"]: event for event in found}

    def completed_events(self, response: httpx.Response) -> dict[str, dict[str, Any]]:
        """events(), once access.complete is there: a streamed response (HEAD here) reaches
        the client a moment before its access.complete is committed."""
        return dict(
            wait_for(lambda: (found := self.events(response)).get("access.complete") and found)
        )

    def assert_no_fd(self, count: ClosingCount) -> None:
        """Every clip opened was closed, and this process holds no fd on one."""
        clip_dir = str(self.env.root / "footage" / "cust-a")
        wait_for(lambda: not any(p.startswith(clip_dir) for p in open_paths()))
        wait_for(lambda: count.closed == count.opened)
        assert count.opened == 4


def accel_env(root: Path, **extra: str) -> GatewayEnv:
    env = make_env(
        root,
        {"FOOTGW_DELIVERY": "accel", "FOOTGW_TRUSTED_PROXIES": "127.0.0.1", **extra},
    )
    env.put_clip("cust-a", "cam", CLIP, DATA)
    env.put_clip("cust-b", "cam", CLIP, b"another customer's clip")
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (`make test` installs it with apt as root)")
    env = accel_env(tmp_path_factory.mktemp("accel"))
    with start_live(env) as live:
        port = free_port()
        prefix = tmp_path_factory.mktemp("nginx")
        conf = local_conf(live.url, env.root / "footage", prefix, port)
        nginx = start_nginx(binary, conf, prefix, port)
        try:
            with httpx.Client(base_url=nginx.url, timeout=30.0) as client:
                yield Stack(env, live, nginx, client)
        finally:
            nginx.stop()


def assert_footage_headers(stack: Stack, r: httpx.Response, size: int) -> None:
    """Each header the contract requires arrives once, with the gateway's values."""
    for name in (*REQUIRED, "last-modified", "accept-ranges", "content-length"):
        assert len(r.headers.get_list(name)) == 1, (name, r.headers.get_list(name))
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes"
    assert "x-accel-redirect" not in r.headers
    head = stack.client.head(PATH, headers=stack.owner())  # answered by the gateway itself
    assert head.headers["etag"] == r.headers["etag"]
    assert head.headers["last-modified"] == r.headers["last-modified"]
    assert int(r.headers["content-length"]) == size


# --- through nginx -----------------------------------------------------------------------------


def test_a_whole_clip_comes_from_nginx_with_the_gateways_headers(stack: Stack) -> None:
    r = stack.client.get(PATH, headers=stack.owner())
    assert r.status_code == 200 and r.content == DATA
    assert_footage_headers(stack, r, len(DATA))
    events = stack.events(r)
    assert events["access.decision"]["event_id"] == r.headers["x-audit-event-id"]
    assert events["access.decision"]["decision"] == "allow"
    assert events["access.decision"]["client_ip"] == "127.0.0.1"
    complete = events["access.complete"]
    assert complete["bytes_sent"] is None  # nginx sent them: not known here
    # nginx's X-Request-ID is kept beside the gateway's own request id, never as it
    nginx_id = complete["detail"].pop("client_request_id")
    assert nginx_id and nginx_id != r.headers["x-request-id"]
    assert complete["detail"] == {"completed": True, "clip": f"cust-a/cam/{CLIP}"} | {
        "delivered_by": "nginx"
    }


def test_a_range_comes_from_nginx_and_the_decision_records_it(stack: Stack) -> None:
    r = stack.client.get(PATH, headers=stack.owner(Range="bytes=1000-1999"))
    assert r.status_code == 206 and r.content == DATA[1000:2000]
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(DATA)}"
    assert_footage_headers(stack, r, 1000)
    decision = stack.events(r)["access.decision"]
    assert (decision["range"], decision["status"]) == ("bytes=1000-1999", 206)
    suffix = stack.client.get(PATH, headers=stack.owner(Range="bytes=-10"))
    assert suffix.status_code == 206 and suffix.content == DATA[-10:]


def test_several_ranges_are_served_whole_as_the_gateway_decided(stack: Stack) -> None:
    r = stack.client.get(PATH, headers=stack.owner(Range="bytes=0-9,100-109"))
    assert r.status_code == 200 and r.content == DATA  # max_ranges 1: never multipart
    assert stack.events(r)["access.decision"]["range"] is None


def test_an_if_range_with_the_gateways_etag_keeps_the_range(stack: Stack) -> None:
    etag = stack.client.head(PATH, headers=stack.owner()).headers["etag"]
    r = stack.client.get(PATH, headers=stack.owner(Range="bytes=0-99", **{"If-Range": etag}))
    assert r.status_code == 206 and r.content == DATA[:100]


def test_head_is_answered_by_the_gateway(stack: Stack) -> None:
    r = stack.client.head(PATH, headers=stack.owner())
    assert r.status_code == 200 and r.headers["content-length"] == str(len(DATA))
    events = stack.completed_events(r)
    assert events["access.decision"]["detail"]["method"] == "HEAD"
    assert events["access.complete"]["detail"]["completed"] is True
    assert "delivered_by" not in events["access.complete"]["detail"]


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        (f"/v1/footage/cust-b/cam/{CLIP}", {}, 403, "not_owner"),
        ("/v1/footage/cust-a/cam/20261128T111500Z.mp4", {}, 404, "not_found"),
        (PATH, {"Range": f"bytes={len(DATA)}-"}, 416, "range_not_satisfiable"),
        ("/v1/footage/cust-a/cam/not-a-clip", {}, 400, "bad_request"),
    ],
)
def test_refusals_are_the_gateways_own_json(
    stack: Stack, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    r = stack.client.get(path, headers=stack.owner(**headers))
    assert r.status_code == status and r.json()["error"]["code"] == code
    decision = stack.events(r)["access.decision"]
    assert decision["event_id"] == r.headers["x-audit-event-id"]
    assert decision["status"] == status
    if status == 416:  # the gateway's, as in proxy mode: nginx never sees this request's file
        assert r.headers["content-range"] == f"bytes */{len(DATA)}"


def test_unauthenticated_is_refused_before_nginx_opens_anything(stack: Stack) -> None:
    r = stack.client.get(PATH)
    assert r.status_code == 401 and DATA[:64] not in r.content
    assert r.headers["x-audit-event-id"]


@pytest.mark.parametrize(
    "path",
    [
        f"{DEFAULT_ACCEL_PREFIX}cust-a/cam/{CLIP}",
        f"{DEFAULT_ACCEL_PREFIX}cust-b/cam/{CLIP}",
        DEFAULT_ACCEL_PREFIX,
        f"/v1/..{DEFAULT_ACCEL_PREFIX}cust-a/cam/{CLIP}",
        f"{DEFAULT_ACCEL_PREFIX.upper()}cust-a/cam/{CLIP}",
    ],
)
def test_the_internal_prefix_is_never_served_to_a_client(stack: Stack, path: str) -> None:
    for headers in ({}, stack.owner()):
        r = stack.client.get(path, headers=headers)
        assert DATA[:64] not in r.content
        assert r.status_code in (400, 404), (path, r.status_code)
        if r.status_code == 404 and path.startswith(DEFAULT_ACCEL_PREFIX):
            assert "x-audit-event-id" not in r.headers  # nginx itself refused it


def test_an_x_accel_redirect_sent_by_a_client_is_ignored(stack: Stack) -> None:
    r = stack.client.get(
        f"/v1/footage/cust-b/cam/{CLIP}",
        headers=stack.owner(**{"X-Accel-Redirect": f"{DEFAULT_ACCEL_PREFIX}cust-b/cam/{CLIP}"}),
    )
    assert r.status_code == 403 and b"another customer's clip" not in r.content


def test_every_answer_through_nginx_closes_the_clip(stack: Stack) -> None:
    count = counted(stack.live)
    try:
        send_each_kind_of_request(stack)
    finally:
        services_of(stack.live).flow.storage = count.inner
    stack.assert_no_fd(count)


def send_each_kind_of_request(stack: Stack) -> None:
    for headers in ({}, {"Range": "bytes=0-9"}, {"Range": f"bytes={len(DATA)}-"}):
        stack.client.get(PATH, headers=stack.owner(**headers))
    stack.client.head(PATH, headers=stack.owner())


# --- the gateway alone (no nginx needed) -------------------------------------------------------


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = accel_env(tmp_path_factory.mktemp("direct"), FOOTGW_ACCEL_PREFIX="/internal/clips/")
    with start_live(env) as live:
        yield live


def test_reached_directly_the_gateway_sends_an_empty_audited_answer(direct: Live) -> None:
    headers = direct.env.auth("alice", "customer", customer_id="cust-a", Range="bytes=0-9")
    r = direct.client.get(PATH, headers=headers)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["x-accel-redirect"] == f"/internal/clips/cust-a/cam/{CLIP}"
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["accept-ranges"] == "bytes"  # only with a range: nginx adds none to a 206
    whole = direct.client.get(
        PATH, headers=direct.env.auth("alice", "customer", customer_id="cust-a")
    )
    assert "accept-ranges" not in whole.headers  # nginx adds its own to a 200; no second one
    found = trace(direct.env.settings.database_url, r.headers["x-request-id"])
    # Both events are committed by the time the redirect is answered.
    assert [e["type"] for e in found] == ["access.decision", "access.complete"]
    assert found[0]["event_id"] == r.headers["x-audit-event-id"]
    assert found[0]["range"] == "bytes=0-9"


def test_head_never_carries_an_x_accel_redirect(direct: Live) -> None:
    r = direct.client.head(PATH, headers=direct.env.auth("alice", "customer", customer_id="cust-a"))
    assert r.status_code == 200 and "x-accel-redirect" not in r.headers
    assert r.headers["content-length"] == str(len(DATA))


def test_no_redirect_when_the_decision_cannot_be_committed(direct: Live) -> None:
    store = services_of(direct).audit.store
    real = store.append_batch

    def full(events: Any) -> Any:
        raise AuditUnavailable("The audit store is full.")

    store.append_batch = full
    try:
        r = direct.client.get(
            PATH, headers=direct.env.auth("alice", "customer", customer_id="cust-a")
        )
    finally:
        store.append_batch = real
    assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable"
    assert "x-accel-redirect" not in r.headers


def test_the_path_holds_validated_ids_only() -> None:
    when = datetime(2026, 11, 28, tzinfo=UTC)
    good = ClipRef("cust-a", "cam_1", CLIP, when)
    assert accel_path("/p/", good) == f"/p/cust-a/cam_1/{CLIP}"
    for bad in (
        ClipRef("..", "cam", CLIP, when),
        ClipRef("cust-a", "cam/../../etc", CLIP, when),
        ClipRef("cust-a", "cam", "20261128T101500Z.mp4?x=1", when),
        ClipRef("cust-a", "cam", "20261128T101500Z.mp4\r\nX-Evil: 1", when),
        ClipRef("cust%2e", "cam", CLIP, when),
    ):
        with pytest.raises(ValueError, match="invalid clip ref"):
            accel_path("/p/", bad)
