"""CPU per play request: the gateway process's utime + stime around a fixed wrk run.

    python bench/play_cpu.py [--rounds N] [--seconds S] [--tree NAME=PATH ...]

Each `--tree` is a directory holding a `gateway` package (this checkout by default, as
`this`); every tree gets one `footage-gateway serve` process with one worker, started with
PYTHONPATH set to that tree, on one world (bench/fixtures.py) and its own data dir. 32 agents
start a playback session on each, then the rounds alternate between the trees: one wrk run of
32 clients (64 KiB random ranges, one playback URL per connection, bench/load.py) per tree a
round, and the CPU the process used (every thread: /proc/PID/stat) divided by the requests wrk
counted. The bare one-pread app (bench/baselines.py) runs in the same rounds for comparison.
CPU per request moves far less with other load on the machine than req/s does
(docs/benchmarks.md, "The request path"). Every run's figure is printed and kept as
bench/runs/<utc>-play-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import fixtures
import load
import playback
import servers
from fixtures import CAMERA, CLIP, CLIP_SIZE, CUSTOMER
from report import say

BENCH = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measured(pid: int, base: str, paths: list[str], seconds: float, workdir: Path) -> dict:
    before = cpu_seconds(pid)
    result = load.run_paths(base, paths, [{}], CLIP_SIZE, seconds, workdir)
    used = cpu_seconds(pid) - before
    return {
        "requests": result.requests,
        "rps": round(result.rps, 1),
        "p99_ms": round(result.p99_ms, 2),
        "bad": result.bad,
        "cpu_s": round(used, 3),
        "cpu_ms_per_request": round(used * 1000 / max(result.requests, 1), 4),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH")
    parser.add_argument("--no-bare", action="store_true")
    args = parser.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(BENCH.parent)}
    started_utc = datetime.now(UTC)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=BENCH.parent
    ).stdout.strip()
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    if not args.no_bare:
        runs["bare"] = []
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="footgw-playcpu-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        world = fixtures.make_world(root)
        started: list[servers.Server] = []
        try:
            gateways: dict[str, tuple[servers.Server, list[str]]] = {}
            for name, path in trees.items():
                data = fixtures.make_data_dir(world, root / f"data-{name}")
                env = world.env(data, PYTHONPATH=path)
                gateway = servers.start_gateway(f"gateway-{name}", env, logs)
                started.append(gateway)
                paths = [
                    playback.start_session(gateway.url, world.agent_headers(i))
                    for i in range(load.CLIENTS)
                ]
                gateways[name] = (gateway, paths)
            bare = None
            if not args.no_bare:
                bare = servers.start_baseline("pread", world.footage, world.clip_path, logs)
                started.append(bare)
            bare_paths = [f"/{CUSTOMER}/{CAMERA}/{CLIP}"] * load.CLIENTS
            # A warm-up run each, not counted (caches, the first liveness reads).
            for gateway, paths in gateways.values():
                measured(gateway.pid, gateway.url, paths, 1.0, root)
            for round_ in range(args.rounds):
                order = list(gateways) if round_ % 2 == 0 else list(reversed(gateways))
                for name in order:
                    gateway, paths = gateways[name]
                    figure = measured(gateway.pid, gateway.url, paths, args.seconds, root)
                    runs[name].append(figure)
                    say(f"round {round_ + 1} {name}: {json.dumps(figure)}")
                if bare is not None:
                    figure = measured(bare.pid, bare.url, bare_paths, args.seconds, root)
                    runs["bare"].append(figure)
                    say(f"round {round_ + 1} bare: {json.dumps(figure)}")
        finally:
            for server in reversed(started):
                server.stop()
    out = {
        "run": {
            "commit": commit,
            "started_utc": started_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trees": trees,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "cores": os.cpu_count(),
            "load_average_start": " ".join(load_start),
            "load_average_end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "client": "wrk -t1 -c32" if load.wrk_binary() else "asyncio client",
        },
        "runs": runs,
    }
    target = BENCH / "runs" / f"{started_utc.strftime('%Y%m%dT%H%M%SZ')}-play-cpu.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    for name, figures in runs.items():
        per = ", ".join(f"{f['cpu_ms_per_request']:.3f}" for f in figures)
        rps = ", ".join(f"{f['rps']:.0f}" for f in figures)
        say(f"{name}: CPU ms/request {per}; req/s {rps}")
    say(f"wrote {target.relative_to(BENCH)}")
    return 0


if __name__ == "__main__":
    time.tzset()
    sys.exit(main(sys.argv[1:]))
