"""64 KiB ranged reads by 32 concurrent keep-alive clients: wrk when installed, else asyncio.

Each request picks a random 64 KiB-aligned range of the clip and one of the agents' headers
(token, purpose, justification), so the gateway does its whole flow on every request. The
result is requests/s, the p99 latency, and how many answers were not 206 (any is a failure).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RANGE_SIZE = 64 * 1024
CLIENTS = 32


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p99_ms: float
    bad: int  # answers other than 206, plus socket errors

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_binary() -> str | None:
    return shutil.which("wrk")


WRK_SCRIPT = """\
local headers = {headers}
local paths = {paths}
local ranges = {ranges}
local size = {size}
local n = 0
function init(args)
  math.randomseed(os.time())
end
function request()
  n = n + 1
  local h = headers[(n % #headers) + 1]
  local start = math.random(0, ranges - 1) * size
  h["Range"] = "bytes=" .. start .. "-" .. (start + size - 1)
  return wrk.format("GET", paths[(n % #paths) + 1], h)
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCHJSON {{\\"requests\\": %d, \\"us\\": %d, \\"p99_us\\": %d, " ..
    "\\"bad\\": %d}}\\n", summary.requests, summary.duration, latency:percentile(99), bad))
end
"""


def _lua_headers(headers: Sequence[Mapping[str, str]]) -> str:
    rows = []
    for h in headers:
        pairs = ", ".join(f'["{k}"] = {json.dumps(v)}' for k, v in h.items())
        rows.append("{" + pairs + "}")
    return "{" + ", ".join(rows) + "}"


def run_wrk(
    base: str,
    paths: Sequence[str],
    headers: Sequence[Mapping[str, str]],
    clip_size: int,
    seconds: float,
    workdir: Path,
) -> LoadResult:
    """wrk -c32 with one thread (the C client leaves the second core to the server), its
    requests taking `paths` in turn."""
    script = workdir / "ranged.lua"
    script.write_text(
        WRK_SCRIPT.format(
            headers=_lua_headers(headers),
            paths="{" + ", ".join(json.dumps(p) for p in paths) + "}",
            ranges=clip_size // RANGE_SIZE,
            size=RANGE_SIZE,
        )
    )
    argv = [
        wrk_binary() or "wrk",
        "-t1",
        f"-c{CLIENTS}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    match = re.search(r"BENCHJSON (\{.*\})", out.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(match[1])
    return LoadResult(data["requests"], data["us"] / 1e6, data["p99_us"] / 1000, data["bad"])


async def _client(
    host: str,
    port: int,
    path: str,
    headers: Sequence[Mapping[str, str]],
    clip_size: int,
    until: float,
    latencies: list[float],
    bad: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            h = dict(random.choice(headers))
            start = random.randrange(clip_size // RANGE_SIZE) * RANGE_SIZE
            h["Range"] = f"bytes={start}-{start + RANGE_SIZE - 1}"
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"] + [
                f"{k}: {v}" for k, v in h.items()
            ]
            began = time.perf_counter()
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if status != 206:
                bad.append(status)
    finally:
        writer.close()


def run_asyncio(
    base: str,
    paths: Sequence[str],
    headers: Sequence[Mapping[str, str]],
    clip_size: int,
    seconds: float,
) -> LoadResult:
    """The fallback client: one keep-alive connection per path on one event loop (uvloop if
    present)."""
    parts = urlsplit(base)
    latencies: list[float] = []
    bad: list[int] = []

    async def main() -> float:
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(
            *(
                _client(
                    parts.hostname or "127.0.0.1",
                    parts.port or 80,
                    path,
                    headers,
                    clip_size,
                    until,
                    latencies,
                    bad,
                )
                for path in paths
            )
        )
        return time.perf_counter() - began

    try:
        import uvloop

        elapsed = uvloop.run(main())
    except ImportError:
        elapsed = asyncio.run(main())
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("inf")
    return LoadResult(len(latencies), elapsed, p99, len(bad))


def run_paths(
    base: str,
    paths: Sequence[str],
    headers: Sequence[Mapping[str, str]],
    clip_size: int,
    seconds: float,
    workdir: Path,
) -> LoadResult:
    """64 KiB ranged reads over `paths` (CLIENTS of them: one per connection without wrk)."""
    if wrk_binary():
        return run_wrk(base, paths, headers, clip_size, seconds, workdir)
    return run_asyncio(base, paths, headers, clip_size, seconds)


def run_load(
    url: str, headers: Sequence[Mapping[str, str]], clip_size: int, seconds: float, workdir: Path
) -> LoadResult:
    """64 KiB ranged reads of one URL by CLIENTS connections."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    return run_paths(base, [parts.path] * CLIENTS, headers, clip_size, seconds, workdir)
