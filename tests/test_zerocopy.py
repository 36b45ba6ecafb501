"""Zero-copy clip bodies (gateway/zerocopy.py): byte-exact, whatever the client's pace.

The gateway runs its production protocol on a real socket (tests/support/server.py); a clip
larger than the first chunk leaves by sendfile after that chunk. What users rely on: every byte
is the clip's own, in order, for whole clips and ranges, for a fast reader and for one that
stalls; a client that leaves gets its bytes counted and frees its descriptors; a clip that
shrinks under a stream ends the response short instead of hanging it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from gateway import zerocopy
from gateway.zerocopy import ZeroCopyFailed
from tests.support.faults import wait_for_complete
from tests.support.server import Live

CLIP = "20261127T101500Z.mp4"
SIZE = 12 * 1024 * 1024 + 12345  # several zero-copy slices after the first 512 KiB chunk
DATA = os.urandom(SIZE)


@pytest.fixture
def seeded(live: Live) -> Live:
    live.env.put_clip("c1", "front", CLIP, DATA)
    return live


@pytest.fixture
def sendfile_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What each thread turn sent by sendfile (a spy on the real function)."""
    sent: list[int] = []
    real = zerocopy._send_turn

    def spy(socket_fd: int, file_fd: int, offset: int, count: int) -> int:
        sent.append(real(socket_fd, file_fd, offset, count))
        return sent[-1]

    monkeypatch.setattr(zerocopy, "_send_turn", spy)
    return sent


def owner(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def raw_get(
    live: Live, headers: dict[str, str], *, rcvbuf: int = 0, pause: float = 0.0
) -> tuple[bytes, bytes]:
    """A GET on a plain socket: (head, body); `rcvbuf` and `pause` make a slow reader."""
    host, port = live.url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect((host, int(port)))
        lines = [f"GET /v1/footage/c1/front/{CLIP} HTTP/1.1", f"Host: {host}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if pause:
                time.sleep(pause)
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    return head, body


def header(head: bytes, wanted: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == wanted:
            return value.strip().decode()
    raise AssertionError(f"no {wanted!r} header")


def content_length(head: bytes) -> int:
    return int(header(head, b"content-length"))


def test_a_whole_clip_arrives_byte_exact(seeded: Live, sendfile_bytes: list[int]) -> None:
    head, body = raw_get(seeded, owner(seeded))
    assert head.startswith(b"HTTP/1.1 200")
    assert content_length(head) == SIZE
    assert hashlib.sha256(body).digest() == hashlib.sha256(DATA).digest()
    # All but the first chunk (read before the head, so a storage error is still a 404/502)
    # left by sendfile.
    assert sum(sendfile_bytes) == SIZE - 512 * 1024


def test_a_short_range_is_one_message_and_no_sendfile(
    seeded: Live, sendfile_bytes: list[int]
) -> None:
    head, body = raw_get(seeded, {**owner(seeded), "Range": "bytes=100-65635"})
    assert head.startswith(b"HTTP/1.1 206")
    assert body == DATA[100:65636]
    assert sendfile_bytes == []


@pytest.mark.parametrize(
    "first,last",
    [(0, SIZE - 1), (1, SIZE - 2), (524_287, 9_000_001), (3_333_333, SIZE - 1)],
)
def test_ranges_arrive_byte_exact(seeded: Live, first: int, last: int) -> None:
    head, body = raw_get(seeded, {**owner(seeded), "Range": f"bytes={first}-{last}"})
    assert head.startswith(b"HTTP/1.1 206")
    assert body == DATA[first : last + 1]


def test_a_slow_reader_gets_every_byte_in_order(seeded: Live) -> None:
    # A small receive buffer and pauses fill the socket: the transport's buffered head and
    # first chunk must be out before sendfile writes, and every turn must wait, not spin.
    head, body = raw_get(seeded, owner(seeded), rcvbuf=16384, pause=0.0005)
    assert content_length(head) == SIZE
    assert body == DATA


def test_a_client_that_leaves_is_counted_and_frees_its_descriptors(seeded: Live) -> None:
    sockets_before = sockets()
    host, port = seeded.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    token = owner(seeded)["Authorization"]
    request = f"GET /v1/footage/c1/front/{CLIP} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
    sock.sendall((request + "\r\n").encode())
    received = bytearray()
    while len(received) < 2 * 1024 * 1024:
        received += sock.recv(65536)
    sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    event = wait_for_complete(seeded.env.settings.database_url, header(head, b"x-request-id"))
    assert event["detail"]["completed"] is False
    assert len(body) <= event["bytes_sent"] < SIZE
    # Neither the clip's descriptor (nor its duplicate) nor the connection's socket is left.
    deadline = time.monotonic() + 10
    while (clip_fds() or sockets() > sockets_before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clip_fds() == []
    assert sockets() <= sockets_before


def clip_fds() -> list[str]:
    return [name for name in open_fds() if name.endswith(CLIP)]


def sockets() -> int:
    return sum(name.startswith("socket:") for name in open_fds())


def open_fds() -> list[str]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the directory was read
            found.append(os.readlink(f"/proc/self/fd/{name}"))
    return sorted(found)


def test_a_clip_that_shrinks_ends_the_response_short(seeded: Live, tmp_path: Path) -> None:
    path = seeded.env.root / "footage" / "c1" / "front" / CLIP
    assert path.exists(), "the fixture's footage tree moved: update this test"
    host, port = seeded.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        token = owner(seeded)["Authorization"]
        request = (
            f"GET /v1/footage/c1/front/{CLIP} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\r\n"
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(request.encode())
        received = sock.recv(65536)
        os.truncate(path, 2 * 1024 * 1024)  # the recorder rewrote it, say
        while chunk := sock.recv(65536):  # must end (the server closes), not hang
            received += chunk
    _, _, body = received.partition(b"\r\n\r\n")
    assert len(body) < SIZE
    assert DATA.startswith(body[: 2 * 1024 * 1024])


# -- the thread's turn, on a socket pair ----------------------------------------------------------


def test_a_turn_never_waits_for_a_stalled_reader(tmp_path: Path) -> None:
    """Waiting for the client is the event loop's (zerocopy._writable), never a thread's."""
    source = tmp_path / "clip"
    source.write_bytes(DATA)
    left, right = socket.socketpair()
    left.setblocking(False)
    with left, right, open(source, "rb") as file:
        started = time.monotonic()
        sent = zerocopy._send_turn(left.fileno(), file.fileno(), 0, SIZE)
        took = time.monotonic() - started
        assert zerocopy._send_turn(left.fileno(), file.fileno(), sent, SIZE - sent) == 0
    assert 0 < sent < SIZE  # the socket filled; nobody read
    assert took < zerocopy.TURN_SECONDS


def test_a_turn_reports_a_file_that_ends_early(tmp_path: Path) -> None:
    source = tmp_path / "clip"
    source.write_bytes(b"x" * 1000)
    left, right = socket.socketpair()
    drained = threading.Thread(target=lambda: right.recv(1 << 20), daemon=True)
    drained.start()
    with left, right, open(source, "rb") as file:
        with pytest.raises(ZeroCopyFailed) as failed:
            zerocopy._send_turn(left.fileno(), file.fileno(), 0, 5000)
        drained.join(timeout=10)  # its recv, before `right` closes under it (EBADF)
    assert failed.value.sent == 1000


def test_a_client_that_half_closes_mid_slice_is_counted_for_every_byte_it_got(
    seeded: Live,
) -> None:
    """A half-close ends the request for uvicorn (its transport closes: http.disconnect) while
    the socket stays open through the zero-copy duplicate: what the thread sent of the slice
    in progress reaches the client and must be in access.complete's bytes_sent."""
    host, port = seeded.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        token = owner(seeded)["Authorization"]
        request = (
            f"GET /v1/footage/c1/front/{CLIP} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        )
        sock.sendall((request + "\r\n").encode())
        received = bytearray()
        while len(received) < 1536 * 1024:  # into the first zero-copy slice (after 512 KiB)
            received += sock.recv(65536)
        sock.shutdown(socket.SHUT_WR)  # the request's side ends; the client still reads
        # The client stalls longer than a thread turn, so the slice cannot finish in the turn
        # that sees the disconnect, then takes whatever the server had sent.
        time.sleep(zerocopy.TURN_SECONDS * 2)
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert DATA.startswith(body)
    event = wait_for_complete(seeded.env.settings.database_url, header(head, b"x-request-id"))
    assert event["detail"]["completed"] is (len(body) == SIZE)
    assert event["bytes_sent"] == len(body)


# -- attacks on the connection and the server's threads ------------------------------------------


def read_response(sock: socket.socket, buffered: bytearray) -> tuple[bytes, bytes]:
    """One response with a Content-Length off a kept-alive socket: (head, body)."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    length = 0 if head.startswith(b"HTTP/1.1 304") else content_length(head)
    del buffered[:]
    buffered += rest
    while len(buffered) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the connection"
        buffered += chunk
    body = bytes(buffered[:length])
    del buffered[:length]
    return head, body


def request(method: str, token: str, extra: str = "") -> bytes:
    return (
        f"{method} /v1/footage/c1/front/{CLIP} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {token}\r\n{extra}\r\n"
    ).encode()


def test_pipelined_and_kept_alive_requests_after_zero_copy_bodies_are_byte_exact(
    seeded: Live, sendfile_bytes: list[int]
) -> None:
    host, port = seeded.url.removeprefix("http://").split(":")
    token = owner(seeded)["Authorization"]
    last = SIZE - 1
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            request("GET", token)
            + request("GET", token, f"Range: bytes=1000000-{last}\r\n")
            + request("HEAD", token)
            + request("GET", token, f"Range: bytes={last}-{last}\r\n")
        )
        buffered = bytearray()
        head, body = read_response(sock, buffered)
        assert head.startswith(b"HTTP/1.1 200") and body == DATA
        head, body = read_response(sock, buffered)
        assert head.startswith(b"HTTP/1.1 206") and body == DATA[1000000:]
        assert header(head, b"content-range") == f"bytes 1000000-{last}/{SIZE}"
        # HEAD: the head only, with the whole clip's length, and nothing after it.
        while b"\r\n\r\n" not in buffered:
            buffered += sock.recv(65536)
        head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and content_length(head) == SIZE
        buffered[:] = rest
        head, body = read_response(sock, buffered)
        assert head.startswith(b"HTTP/1.1 206") and body == DATA[last:]
        # And the connection is still good for one more, after all of them.
        sock.sendall(request("GET", token, "Range: bytes=0-2999999\r\n"))
        head, body = read_response(sock, buffered)
        assert head.startswith(b"HTTP/1.1 206") and body == DATA[:3000000]
        assert buffered == b""
    assert sum(sendfile_bytes) == 2 * (SIZE - 512 * 1024) - 1000000 + 3000000 - 512 * 1024


def test_many_reset_transfers_leave_no_descriptor_behind(seeded: Live) -> None:
    before = sockets()
    host, port = seeded.url.removeprefix("http://").split(":")
    token = owner(seeded)["Authorization"]
    ids = []
    for _ in range(30):
        sock = socket.create_connection((host, int(port)), timeout=20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(request("GET", token))
        received = bytearray()
        while len(received) < 1024 * 1024:
            received += sock.recv(65536)
        ids.append(header(bytes(received).partition(b"\r\n\r\n")[0], b"x-request-id"))
        # A reset, not a FIN: close with SO_LINGER 0.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    for request_id in ids:
        event = wait_for_complete(seeded.env.settings.database_url, request_id)
        assert event["detail"]["completed"] is False and 512 * 1024 <= event["bytes_sent"] < SIZE
    deadline = time.monotonic() + 10
    while (clip_fds() or sockets() > before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clip_fds() == []
    assert sockets() <= before


def test_two_hundred_clients_that_never_read_do_not_stall_another(seeded: Live) -> None:
    """Slowloris on the body: far more stalled zero-copy responses than the server has threads
    for them (THREADS, 32); a client that reads still gets its clip promptly (it took 21 s
    while a stalled client's wait held a thread)."""
    host, port = seeded.url.removeprefix("http://").split(":")
    token = owner(seeded)["Authorization"]
    stalled = []
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.sendall(request("GET", token))
            stalled.append(sock)
        for sock in stalled:  # each reads past the first chunk, into sendfile, then stalls
            received = bytearray()
            while len(received) < 1024 * 1024:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        _head, body = raw_get(seeded, owner(seeded))
        took = time.monotonic() - started
    finally:
        for sock in stalled:
            sock.close()
    assert body == DATA
    assert took < 5.0, f"a reader behind 200 stalled ones took {took:.1f} s for {SIZE} bytes"


def test_a_clip_unlinked_or_replaced_mid_send_never_sends_another_file_s_bytes(
    seeded: Live,
) -> None:
    """Retention (or a recorder's rename over it) removing the file under an open response:
    the descriptor names the clip as it was opened, so whatever arrives is that clip's bytes,
    never the replacement's; and the stream either ends whole or is cut by its re-check
    (`ended_by: deleted`, tests/test_streamguard.py), its record saying which."""
    path = seeded.env.root / "footage" / "c1" / "front" / CLIP
    host, port = seeded.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(request("GET", owner(seeded)["Authorization"]))
        received = bytearray(sock.recv(65536))
        while b"\r\n\r\n" not in received:  # the head, whole, before the file goes
            received += sock.recv(65536)
        replacement = path.with_name("replacement")
        replacement.write_bytes(bytes(SIZE))
        os.replace(replacement, path)
        os.unlink(path)
        head, _ = received.split(b"\r\n\r\n", 1)
        request_id = header(bytes(head), b"x-request-id")
        body = bytes(received.split(b"\r\n\r\n", 1)[1])
        while chunk := sock.recv(1 << 20):
            body += chunk
            if len(body) >= SIZE:
                break
    assert body == DATA[: len(body)]  # the clip as opened: not one byte of the replacement
    event = wait_for_complete(seeded.env.settings.database_url, request_id)
    if len(body) == SIZE:
        assert event["detail"]["completed"] is True and event["bytes_sent"] == SIZE
    else:
        assert event["detail"]["completed"] is False
        assert event["detail"]["ended_by"] == "deleted"


@pytest.mark.anyio
async def test_a_send_after_the_client_left_is_not_counted_as_sent(tmp_path: Path) -> None:
    """uvicorn drops a gone client's body silently; a zero-copy send says it sent nothing, so
    a stream between the disconnect and its watcher's cancel counts no phantom slice."""
    source = tmp_path / "clip"
    source.write_bytes(DATA)

    class GoneCycle:  # what uvicorn's RequestResponseCycle looks like once its client left
        disconnected = True
        response_started = True
        response_complete = False
        chunked_encoding = False
        expected_content_length = SIZE
        scope = {"method": "GET"}

        async def send(self, message: object) -> None:
            raise AssertionError("nothing may be written for a gone client")

    cycle = GoneCycle()
    zerocopy.serve_zerocopy(cycle)
    message = zerocopy.zerocopy_message(open(source, "rb"), 0, SIZE)  # noqa: SIM115
    with pytest.raises(ZeroCopyFailed) as failed:
        await cycle.send(message)
    message["file"].close()
    assert failed.value.sent == 0 and message["sent"] == 0
