"""Which worker process of `serve --workers N` holds a connection, read from /proc.

The supervisor's children are its workers (/proc/PID/task/PID/children). A connection's
server end is one socket inode in /proc/net/tcp (local port = the gateway's, remote port = the
client's); the worker holding it has that inode among its file descriptors. So a test sees
the real process that answered, without the gateway saying anything about itself.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest


def worker_pids(supervisor: int) -> set[int]:
    """The supervisor's live child processes."""
    with open(f"/proc/{supervisor}/task/{supervisor}/children") as children:
        return {int(pid) for pid in children.read().split()}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _server_inode(server_port: int, client_port: int) -> str | None:
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if (
                int(local.split(":")[1], 16) == server_port
                and int(remote.split(":")[1], 16) == client_port
            ):
                return cols[9]
    return None


def serving_pid(conn: http.client.HTTPConnection, pids: set[int]) -> int | None:
    """The one of `pids` that holds the server end of this open connection, if any."""
    assert conn.sock is not None, "make a request first: the connection is not open"
    client_port = conn.sock.getsockname()[1]
    server_port = conn.sock.getpeername()[1]
    inode = _server_inode(server_port, client_port)
    if inode is None:
        return None
    holders = [pid for pid in pids if inode in _socket_inodes(pid)]
    return holders[0] if len(holders) == 1 else None


def connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


@contextlib.contextmanager
def pinned_connections(
    url: str, pids: set[int], per_worker: int = 1, attempts: int = 1000
) -> Iterator[dict[int, list[http.client.HTTPConnection]]]:
    """`per_worker` kept-alive connections held by each of `pids` (opening fresh connections,
    each with one /healthz, until every worker holds enough)."""
    held: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in pids}
    spare: list[http.client.HTTPConnection] = []
    try:
        for _ in range(attempts):
            if all(len(conns) >= per_worker for conns in held.values()):
                break
            conn = connect(url)
            status, _ = get(conn, "/healthz", {})
            assert status == 200
            pid = serving_pid(conn, pids)
            if pid is not None and len(held[pid]) < per_worker:
                held[pid].append(conn)
            else:
                spare.append(conn)  # kept open, so the next connection is a new one
        else:
            counts = {pid: len(conns) for pid, conns in held.items()}
            pytest.fail(f"{attempts} connections never gave every worker {per_worker}: {counts}")
        for conn in spare:
            conn.close()
        spare.clear()
        yield held
    finally:
        for conn in [*(c for conns in held.values() for c in conns), *spare]:
            conn.close()


def wait_for_workers(supervisor: int, count: int, timeout: float = 30.0) -> set[int]:
    """The supervisor's children once there are `count` of them, each listening already."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(supervisor)
        if len(pids) == count:
            return pids
        time.sleep(0.02)
    pytest.fail(f"the supervisor never had {count} workers: {sorted(worker_pids(supervisor))}")
