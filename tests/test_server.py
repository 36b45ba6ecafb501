"""The server's own limits (gateway/server.py), over raw sockets: oversized headers are 431,
slow headers are 408 and closed (however slowly they drip), connections are bounded.

The gateway runs exactly as `serve` configures uvicorn (server_config), with short limits.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from gateway.app import create_app
from gateway.server import Limits, server_config
from tests.support.server import STARTUP_TIMEOUT, GatewayEnv, wait_for

LIMITS = Limits(max_header_bytes=8 * 1024, header_timeout=1.0, max_connections=3, keep_alive=30)
BOUND = 10.0  # seconds: an upper bound on what the server must do, never a synchronisation
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n"


@pytest.fixture
def address(gateway_env: GatewayEnv) -> Iterator[tuple[str, int]]:
    server = uvicorn.Server(server_config(create_app(gateway_env.settings), "127.0.0.1", 0, LIMITS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=STARTUP_TIMEOUT)
    assert server.started
    yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=STARTUP_TIMEOUT)


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=BOUND)


def response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response off the socket (status, headers, body by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF, or reset), waiting at most BOUND."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_headers_under_the_limit_are_served(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        sock.sendall(REQUEST + b"X-Pad: " + b"a" * (6 * 1024) + b"\r\n\r\n")
        assert response(sock)[0] == 200


@pytest.mark.parametrize("complete", [True, False], ids=["in-one-piece", "never-ending"])
def test_oversized_headers_are_431(address: tuple[str, int], complete: bool) -> None:
    """h11 alone refuses only headers still incomplete (as 400); a whole block read at once
    passed. Both are 431 in the contract's JSON, and the connection is closed."""
    with connect(address) as sock:
        pad = b"X-Pad: " + b"a" * (16 * 1024) + b"\r\n"
        sock.sendall(REQUEST + pad + (b"\r\n" if complete else b""))
        status, headers, body = response(sock)
        assert status == 431 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_headers_too_large"
        assert closed(sock)


def test_slow_headers_time_out_with_408_however_they_drip(address: tuple[str, int]) -> None:
    """A slowloris sends a byte now and then so that an idle timeout never fires; the deadline
    runs from the request's start, so the drip does not buy it time."""
    with connect(address) as sock:
        sock.sendall(REQUEST)
        stop = threading.Event()

        def drip() -> None:
            while not stop.wait(0.2):  # pacing the attacker, not synchronising the test
                try:
                    sock.sendall(b"X")
                except OSError:
                    return

        dripper = threading.Thread(target=drip, daemon=True)
        started = time.monotonic()
        dripper.start()
        try:
            status, _headers, body = response(sock)
            assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
            assert closed(sock)
            assert time.monotonic() - started < BOUND
        finally:
            stop.set()
            dripper.join(BOUND)


def test_a_connection_that_never_sends_is_closed(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        assert closed(sock)


def test_a_kept_alive_connection_gets_the_deadline_again(address: tuple[str, int]) -> None:
    with connect(address) as sock:
        sock.sendall(REQUEST + b"\r\n")
        assert response(sock)[0] == 200
        sock.sendall(REQUEST)  # the second request's headers never end
        assert response(sock)[0] == 408
        assert closed(sock)


def test_connections_are_bounded(address: tuple[str, int]) -> None:
    """uvicorn counts the asking connection too: with a bound of 3, two held connections and
    the third is refused 503; once one goes, the next is served."""
    held = [connect(address) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(REQUEST + b"\r\n")
            assert response(sock)[0] == 200  # served, and kept alive: both count now
        with connect(address) as extra:
            extra.sendall(REQUEST + b"\r\n")
            assert response(extra)[0] == 503
        held.pop().close()

        def served() -> bool:
            with connect(address) as again:
                again.sendall(REQUEST + b"\r\n")
                return response(again)[0] == 200

        assert wait_for(served, timeout=BOUND)
    finally:
        for sock in held:
            sock.close()
