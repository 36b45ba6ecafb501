"""`make bench` group `playback`: playback sessions (docs/contract.md §12) at speed.

- 64 KiB random ranged reads, 32 clients, each through its own playback URL (a support agent
  under a grant), against the bare one-pread app; every request must be recorded.
- `POST /v1/playback` at 32 clients: the median latency, its decision durable before it answers.
  Beside it, for information, the same with one client alone.
- A 256 MiB clip through a playback URL against nginx sendfile (proxy mode).

The load client is wrk when installed (a Lua script spreads requests over the 32 URLs), else
the asyncio client of bench/load.py, one URL per connection; the bare app gets the same client.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import fixtures
import httpclient
import httpx
import load
from fixtures import CAMERA, CLIP, CLIP_SIZE, CUSTOMER, MiB
from report import Figure, paired, say

RANGED_SECONDS = 4.0
POST_SECONDS = 3.0
RUNS = 5
STREAM_RUNS = 9
BODY = json.dumps({"customer_id": CUSTOMER, "camera_id": CAMERA, "clip_id": CLIP})


def start_session(gateway_url: str, headers: Mapping[str, str]) -> str:
    """A new playback session's URL path."""
    r = httpx.post(gateway_url + "/v1/playback", content=BODY, headers=dict(headers), timeout=30)
    if r.status_code != 201:
        raise RuntimeError(f"POST /v1/playback: {r.status_code} {r.text}")
    return str(r.json()["url"])


def recorded(data_dir: Path) -> int:
    """Requests recorded through every playback session so far."""
    with sqlite3.connect(data_dir / "gateway.db", timeout=10) as db:
        found = db.execute("SELECT COALESCE(SUM(requests), 0) FROM playback_sessions")
        return int(found.fetchone()[0])


def ranged_figures(
    world: fixtures.World,
    gateway_url: str,
    data_dir: Path,
    pread_url: str,
    workers: int,
    workdir: Path,
) -> list[Figure]:
    say("playback: 64 KiB ranged reads, 32 clients, one playback URL each, vs one-pread app")
    paths = [start_session(gateway_url, world.agent_headers(i)) for i in range(load.CLIENTS)]
    bare_paths = [f"/{CUSTOMER}/{CAMERA}/{CLIP}"] * load.CLIENTS
    p99s: list[float] = []
    problems: list[str] = []

    def gw() -> float:
        before = recorded(data_dir)
        result = load.run_paths(gateway_url, paths, [{}], CLIP_SIZE, RANGED_SECONDS, workdir)
        deadline = time.monotonic() + 10
        while recorded(data_dir) - before < result.requests and time.monotonic() < deadline:
            time.sleep(0.1)  # the recorder writes a moment after each answer
        kept = recorded(data_dir) - before
        if kept < result.requests:
            problems.append(f"{result.requests} play requests answered, {kept} recorded")
        if result.bad:
            problems.append(f"{result.bad} playback answers were not 206")
        p99s.append(result.p99_ms)
        return result.rps

    def bare() -> float:
        result = load.run_paths(pread_url, bare_paths, [{}], CLIP_SIZE, RANGED_SECONDS, workdir)
        if result.bad:
            problems.append(f"{result.bad} bare-app answers were not 206")
        return result.rps

    ours, theirs = paired(gw, bare, RUNS)
    for problem in problems:
        say(f"PROBLEM: {problem}")
    return [
        Figure(
            f"playback: 64 KiB ranged reads, 32 clients, one URL each, every request recorded, "
            f"{workers} workers",
            "req/s",
            ours,
            f"bare one-pread Starlette app, {workers} workers",
            theirs,
            0.5,
            valid=not problems,
        ),
        Figure(
            f"playback: 64 KiB ranged reads, 32 clients, p99 latency, {workers} workers",
            "ms",
            p99s[1:],
            "limit",
            None,
            1.0,
            goal_text="≤ 50 ms",
            lower_is_better=True,
            limit=50.0,
        ),
    ]


async def _poster(
    host: str, port: int, headers: Mapping[str, str], until: float, latencies: list[float]
) -> None:
    body = BODY.encode()
    lines = [
        "POST /v1/playback HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            if int(head.split(b" ", 2)[1]) != 201:
                raise RuntimeError(f"POST /v1/playback answered {head[:40]!r}")
            latencies.append(time.perf_counter() - began)
    finally:
        writer.close()


def _post_medians(world: fixtures.World, gateway_url: str, clients: int) -> list[float]:
    """Median start latency (ms) of each run after a warm-up, `clients` agents posting in turn."""
    parts = urlsplit(gateway_url)
    medians: list[float] = []
    for _ in range(RUNS + 1):
        latencies: list[float] = []

        async def main(latencies: list[float] = latencies) -> None:
            until = time.perf_counter() + POST_SECONDS
            agents = [world.agent_headers(i) for i in range(load.CLIENTS)]
            random.shuffle(agents)
            await asyncio.gather(
                *(
                    _poster(parts.hostname or "", parts.port or 80, h, until, latencies)
                    for h in agents[:clients]
                )
            )

        asyncio.run(main())
        medians.append(statistics.median(latencies) * 1000)
    return medians[1:]


def post_figures(world: fixtures.World, gateway_url: str, workers: int) -> list[Figure]:
    """The goal's figure (32 clients at once) and, for information, one client alone: what a
    viewer who presses play waits for when nobody else is starting."""
    say("playback: POST /v1/playback, 32 clients (support agents under a grant), then 1")
    crowd = _post_medians(world, gateway_url, load.CLIENTS)
    alone = _post_medians(world, gateway_url, 1)
    return [
        Figure(
            f"playback: POST /v1/playback median, {load.CLIENTS} clients, decision durable "
            f"first, {workers} workers",
            "ms",
            crowd,
            "limit",
            None,
            1.0,
            goal_text="≤ 2 ms",
            lower_is_better=True,
            limit=2.0,
        ),
        Figure(
            f"playback: POST /v1/playback median, 1 client, decision durable first, "
            f"{workers} workers",
            "ms",
            alone,
            "— (for information)",
            None,
            None,
        ),
    ]


def stream_figure(world: fixtures.World, gateway_url: str, nginx_url: str | None) -> Figure:
    say("playback: one 256 MiB clip through a playback URL vs nginx sendfile")
    path = start_session(gateway_url, world.owner_headers())
    name = "playback: 256 MiB clip through a playback URL, vs nginx sendfile"

    def gw() -> float:
        return _mib_per_s(httpclient.get(gateway_url + path))

    if nginx_url is None:
        ours = [gw() for _ in range(STREAM_RUNS)]
        return Figure(name, "MiB/s", ours, "nginx not installed: baseline missing", None, 0.7)
    ours, theirs = paired(
        gw,
        lambda: _mib_per_s(httpclient.get(nginx_url + f"/{CUSTOMER}/{CAMERA}/{CLIP}")),
        STREAM_RUNS,
    )
    return Figure(name, "MiB/s", ours, "nginx sendfile", theirs, 0.7)


def _mib_per_s(fetched: httpclient.Fetched) -> float:
    if fetched.status != 200 or fetched.body_bytes != CLIP_SIZE:
        raise RuntimeError(f"stream failed: status {fetched.status}, {fetched.body_bytes} bytes")
    return CLIP_SIZE / MiB / fetched.seconds


def playback_figures(
    world: fixtures.World,
    gateway_url: str,
    data_dir: Path,
    pread_url: str,
    workers: int,
    single_url: str,
    nginx_url: str | None,
    workdir: Path,
) -> list[Figure]:
    """Every figure of the `playback` group: ranged reads and starts on `gateway_url` (the
    gateway with `workers` workers, paired with the bare app with as many), the one stream on
    `single_url` (one process, paired with nginx's one worker)."""
    figures = ranged_figures(world, gateway_url, data_dir, pread_url, workers, workdir)
    figures += post_figures(world, gateway_url, workers)
    figures.append(stream_figure(world, single_url, nginx_url))
    return figures
