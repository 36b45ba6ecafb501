"""Fault injection and evidence for the adversarial suite (tests/test_attack_*, test_faults_*).

- GatewayProcess: a real `footage-gateway serve` subprocess on an ephemeral loopback port, with
  its stderr (JSON logs) in a file and its memory readable from /proc, so it can be SIGKILLed,
  run under another TZ, or soaked.
- TcpFaultProxy: a loopback TCP proxy between the gateway and a backend (the S3 server) that
  can refuse connections or cut them after N bytes, to break storage before or during a stream.
- CountingStorage: wraps a live gateway's storage to count stat() and read() calls.
- tmpfs(): a tiny real filesystem (when this process may mount one) for "out of space".
- trace(): the audit events one request left, found by its X-Request-ID.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import sqlalchemy as sa

from gateway.audit.store import AuditStore
from gateway.audit.verify import VerifyResult, verify_rows
from gateway.db import create_db_engine
from gateway.storage.base import ObjectInfo, OpenClip, Storage
from gateway.types import ClipRef

START_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[2]


# --- a gateway subprocess --------------------------------------------------------------------


def listening_port(pid: int) -> int | None:
    """The TCP port process `pid` listens on (IPv4), read from /proc; None if none yet."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    if not inodes:
        return None
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/tcp") as table:
        next(table)
        for line in table:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                return int(cols[1].split(":")[1], 16)
    return None


class GatewayProcess:
    """`footage-gateway serve` in a subprocess, on 127.0.0.1 and a port the kernel picks."""

    def __init__(self, env: Mapping[str, str], log_path: Path, **extra: str) -> None:
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
        self.env = {
            **base,
            "FOOTGW_WORKERS": "1",  # one process to kill, measure or soak, unless `extra` says
            **env,
            "FOOTGW_HOST": "127.0.0.1",
            "FOOTGW_PORT": "0",
            "FOOTGW_LOG_FORMAT": "json",
            **extra,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> GatewayProcess:
        script = Path(sys.executable).parent / "footage-gateway"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*command, "serve"],
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None:  # bounded poll on a condition: the socket is listening
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the gateway did not start:\n{self.log_path.read_text()}")
            port = listening_port(self.proc.pid)
            if port is None:
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(self.url + "/healthz"), START_TIMEOUT, "healthz")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send `sig` and reap the process; its exit code."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=START_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def memory_kb(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the process, in KiB, from /proc/PID/status."""
        found: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0])
        return found

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `condition()` until true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `footage-gateway ARGS` with this environment (e.g. `audit verify`)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


# --- a TCP proxy that breaks connections on demand -------------------------------------------

ProxyMode = Literal["pass", "refuse", "cut"]


class TcpFaultProxy:
    """Forwards 127.0.0.1:<port> to `upstream`; `mode` decides what happens to new traffic.

    pass: forward both ways. refuse: accept and close at once (a backend that went away).
    cut: forward until `cut_after` bytes have come back on one connection since cut mode
    began, then drop both sides (a backend that dies mid-body). `cuts` counts the drops.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode: ProxyMode = "pass"
        self.cut_after = 1 << 20
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> TcpFaultProxy:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def drop_all(self) -> None:
        """Break every connection open now (pooled keep-alives included), as a dying backend."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.05)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except (OSError, ValueError):  # the listener was closed by stop()
                return
            if self.mode == "refuse":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()  # linger 0: a reset, as from a port nobody listens on
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._pipe, client, server, False)
            self._spawn(self._pipe, server, client, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        counted = 0
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if downstream and self.mode == "cut":
                    room = self.cut_after - counted
                    if len(data) >= room:
                        sink.sendall(data[: max(room, 0)])
                        self.cuts += 1
                        break
                    counted += len(data)
                sink.sendall(data)
        except (OSError, ValueError):  # ValueError: the other direction closed the socket
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


@contextlib.contextmanager
def fault_proxy(upstream_url: str) -> Iterator[TcpFaultProxy]:
    host, _, port = upstream_url.removeprefix("http://").partition(":")
    proxy = TcpFaultProxy((host, int(port))).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that is bound (so nobody else takes it) but never listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# --- counting the storage calls of a live gateway --------------------------------------------


@dataclass
class CountingStorage:
    """Delegates to a real Storage and counts the calls that touch a clip.

    An open() counts as a stat (it is what tells size and ETag), and every read of the opened
    clip counts as a read: open() is the request path's only way to a clip's bytes.
    """

    inner: Storage
    stats: list[str] = field(default_factory=list)
    reads: list[tuple[str, int, int]] = field(default_factory=list)

    async def open(self, clip: ClipRef, *, whole: bool = False) -> OpenClip:
        self.stats.append(clip.key)
        return CountedClip(await self.inner.open(clip, whole=whole), clip.key, self.reads)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self) -> None:
        self.stats.clear()
        self.reads.clear()


@dataclass
class CountedClip:
    """An opened clip whose reads are noted in its CountingStorage's `reads`."""

    inner: OpenClip
    key: str
    reads: list[tuple[str, int, int]]

    @property
    def info(self) -> ObjectInfo:
        return self.inner.info

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        self.reads.append((self.key, start, end))
        async with contextlib.aclosing(self.inner.read(start, end)) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                yield chunk

    async def close(self) -> None:
        await self.inner.close()


def services_of(live: Any) -> Any:
    """The Services of a gateway started by tests.support.server.start_live."""
    return live.services


def count_storage(live: Any) -> CountingStorage:
    """Put a CountingStorage in front of a live gateway's storage (the flow's only handle)."""
    services = services_of(live)
    counting = CountingStorage(services.flow.storage)
    services.flow.storage = counting
    return counting


# --- a filesystem that can fill up --------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[bool]:
    """Mount a tmpfs of `size_kb` KiB at `path`; yields False (mounting nothing) if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


# --- evidence from the audit log --------------------------------------------------------------


def all_events(database_url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url)
    try:
        return list(AuditStore(engine).iter_events())
    finally:
        engine.dispose()


# Events the detection rules may write in the course of a request (contract §8).
DETECTION_EVENTS = {"flag.raised", "principal.suspended"}


def trace(database_url: str, request_id: str) -> list[dict[str, Any]]:
    """Every audit event one request left, in order."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT body FROM audit_events WHERE request_id = :r ORDER BY seq"),
                {"r": request_id},
            ).all()
    finally:
        engine.dispose()
    return [json.loads(row.body) for row in rows]


def wait_for_complete(database_url: str, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The request's access.complete event, polled for: it is written once the stream ends,
    which the client may see a moment before the event commits."""
    found: list[dict[str, Any]] = []

    def landed() -> bool:
        found[:] = [e for e in trace(database_url, request_id) if e["type"] == "access.complete"]
        return bool(found)

    wait_until(landed, timeout, f"access.complete of {request_id}", interval=0.01)
    assert len(found) == 1
    return found[0]


def verify_chain(database_url: str) -> VerifyResult:
    engine = create_db_engine(database_url)
    try:
        return verify_rows(AuditStore(engine).iter_rows())
    finally:
        engine.dispose()


def assert_no_footage(response: httpx.Response, secret: bytes) -> None:
    """Not one recognisable footage byte in the body (checked without printing the body)."""
    leaked = bool(secret) and secret[:32] in response.content
    assert not leaked, f"footage bytes in a {response.status_code} response"


def assert_unauthenticated(database_url: str, response: httpx.Response, secret: bytes) -> None:
    """A 401 with no footage, whose audit trace agrees with its headers.

    A refused footage request is recorded as one anonymous `deny` decision and the response
    names it in X-Audit-Event-ID (contract §5, §7). A request refused before it is a footage
    request at all (two Authorization headers; an administrative route) carries no audit id
    and left nothing. Either way the response and the log agree.
    """
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthenticated"
    assert_no_footage(response, secret)
    events = trace(database_url, response.headers["x-request-id"])
    event_id = response.headers.get("x-audit-event-id")
    if event_id is None:
        assert events == []
        return
    assert [e["event_id"] for e in events] == [event_id]
    assert events[0]["decision"] == "deny" and events[0]["principal"] is None
    assert events[0]["type"] == "access.decision"


def assert_denied(
    database_url: str, response: httpx.Response, secret: bytes, status: int, reason: str
) -> dict[str, Any]:
    """`status` with `reason`, no footage byte, and exactly one matching deny decision."""
    assert response.status_code == status, response.text[:300]
    assert response.json()["error"]["code"] == reason
    assert_no_footage(response, secret)
    events = trace(database_url, response.headers["x-request-id"])
    # Exactly one decision; detection may add flag events under the same request id.
    decisions = [e for e in events if e["type"] == "access.decision"]
    assert [e["event_id"] for e in decisions] == [response.headers["x-audit-event-id"]], [
        e["type"] for e in events
    ]
    assert {e["type"] for e in events} - {"access.decision"} <= DETECTION_EVENTS
    event = decisions[0]
    assert event["decision"] == "deny"
    assert event["reason"] == reason and event["status"] == status
    return event
