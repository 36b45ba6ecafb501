"""`make bench` group `playback`: playback sessions (docs/contract.md §12) at speed.

- 64 KiB random ranged reads, 32 clients, each through its own playback URL (a support agent
  under a grant), against the bare one-pread app; every request must be recorded.
- `POST /v1/playback` at 32 clients: the median latency, its decision durable before it answers.
- A 256 MiB clip through a playback URL against nginx sendfile (proxy mode).

The load client is wrk when installed (a Lua script spreads requests over the 32 URLs), else
the asyncio client of bench/load.py, one URL per connection; the bare app gets the same client.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import fixtures
import httpclient
import httpx
import load
from fixtures import CAMERA, CLIP, CLIP_SIZE, CUSTOMER, MiB
from report import Figure

RANGED_SECONDS = 4.0
POST_SECONDS = 3.0
RUNS = 5
STREAM_RUNS = 9
BODY = json.dumps({"customer_id": CUSTOMER, "camera_id": CAMERA, "clip_id": CLIP})


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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


WRK_PATHS = """\
local paths = {paths}
local ranges = {ranges}
local size = {size}
local n = 0
function init(args)
  math.randomseed(os.time())
end
function request()
  n = n + 1
  local start = math.random(0, ranges - 1) * size
  local h = {{["Range"] = "bytes=" .. start .. "-" .. (start + size - 1)}}
  return wrk.format("GET", paths[(n % #paths) + 1], h)
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCHJSON {{\\"requests\\": %d, \\"us\\": %d, \\"p99_us\\": %d, " ..
    "\\"bad\\": %d}}\\n", summary.requests, summary.duration, latency:percentile(99), bad))
end
"""


def run_paths(base: str, paths: Sequence[str], seconds: float, workdir: Path) -> load.LoadResult:
    """Ranged reads spread over `paths` (one per connection with the asyncio client)."""
    if load.wrk_binary():
        return _run_wrk(base, paths, seconds, workdir)
    return _run_asyncio(base, paths, seconds)


def _run_wrk(base: str, paths: Sequence[str], seconds: float, workdir: Path) -> load.LoadResult:
    """wrk -c32 with one thread, as bench/load.py runs it, over the given paths."""
    script = workdir / "playback.lua"
    lua_paths = "{" + ", ".join(json.dumps(p) for p in paths) + "}"
    script.write_text(
        WRK_PATHS.format(paths=lua_paths, ranges=CLIP_SIZE // load.RANGE_SIZE, size=load.RANGE_SIZE)
    )
    argv = [load.wrk_binary() or "wrk", "-t1", f"-c{load.CLIENTS}", f"-d{seconds:g}s"]
    argv += ["--timeout", "5s", "-s", str(script), base]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = re.search(r"BENCHJSON (\{.*\})", out.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(match[1])
    return load.LoadResult(data["requests"], data["us"] / 1e6, data["p99_us"] / 1000, data["bad"])


def _run_asyncio(base: str, paths: Sequence[str], seconds: float) -> load.LoadResult:
    parts = urlsplit(base)
    latencies: list[float] = []
    bad: list[int] = []

    async def main() -> float:
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(
            *(
                load._client(
                    parts.hostname or "127.0.0.1",
                    parts.port or 80,
                    path,
                    [{}],
                    CLIP_SIZE,
                    until,
                    latencies,
                    bad,
                )
                for path in paths
            )
        )
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("inf")
    return load.LoadResult(len(latencies), elapsed, p99, len(bad))


def paired(
    measure: Callable[[], float], baseline: Callable[[], float], runs: int = RUNS
) -> tuple[list[float], list[float]]:
    """As bench/run.py pairs them: interleaved, the order alternating, after a warm-up each."""
    measure(), baseline()
    ours, theirs = [], []
    for i in range(runs):
        first, second = (measure, baseline) if i % 2 == 0 else (baseline, measure)
        a, b = first(), second()
        ours.append(a if first is measure else b)
        theirs.append(b if first is measure else a)
    return ours, theirs


def ranged_figures(
    world: fixtures.World, gateway_url: str, data_dir: Path, pread_url: str, workdir: Path
) -> list[Figure]:
    say("playback: 64 KiB ranged reads, 32 clients, one playback URL each, vs one-pread app")
    paths = [start_session(gateway_url, world.agent_headers(i)) for i in range(load.CLIENTS)]
    bare_paths = [f"/{CUSTOMER}/{CAMERA}/{CLIP}"] * load.CLIENTS
    p99s: list[float] = []
    problems: list[str] = []

    def gw() -> float:
        before = recorded(data_dir)
        result = run_paths(gateway_url, paths, RANGED_SECONDS, workdir)
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
        result = run_paths(pread_url, bare_paths, RANGED_SECONDS, workdir)
        if result.bad:
            problems.append(f"{result.bad} bare-app answers were not 206")
        return result.rps

    ours, theirs = paired(gw, bare)
    for problem in problems:
        say(f"PROBLEM: {problem}")
    return [
        Figure(
            "playback: 64 KiB ranged reads, 32 clients, one URL each, every request recorded",
            "req/s",
            ours,
            "bare one-pread Starlette app",
            theirs,
            0.5,
            valid=not problems,
        ),
        Figure(
            "playback: 64 KiB ranged reads, 32 clients, p99 latency",
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


def post_figure(world: fixtures.World, gateway_url: str) -> Figure:
    say("playback: POST /v1/playback, 32 clients (support agents under a grant)")
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
                    for h in agents
                )
            )

        asyncio.run(main())
        medians.append(statistics.median(latencies) * 1000)
    return Figure(
        "playback: POST /v1/playback median, 32 clients, decision durable first",
        "ms",
        medians[1:],
        "limit",
        None,
        1.0,
        goal_text="≤ 2 ms",
        lower_is_better=True,
        limit=2.0,
    )


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
    nginx_url: str | None,
    workdir: Path,
) -> list[Figure]:
    """Every figure of the `playback` group."""
    figures = ranged_figures(world, gateway_url, data_dir, pread_url, workdir)
    figures.append(post_figure(world, gateway_url))
    figures.append(stream_figure(world, gateway_url, nginx_url))
    return figures
