"""`make bench`: the gateway against the baselines a user would pick instead, in one run.

Starts `footage-gateway serve` (file store, and a second one on S3) on loopback with the embedded
defaults (SQLite, a file tree, a trusted Ed25519 key), and beside it nginx (sendfile), a bare
Starlette FileResponse app, a bare one-pread Starlette app and moto's S3 server. Every gateway
run is paired with a baseline run right next to it (the order alternating), and each ratio is
the median of the paired ratios, so that other work on the machine moves both sides alike.
Prints one table; writes the run under bench/runs/ and, when it ran every group, as
bench/results.json (bench/results.py); docs/benchmarks.md says how to read them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import boto3
import fixtures
import httpclient
import load
import pg_chain
import playback
import report
import results
import servers
from botocore.config import Config
from fixtures import CAMERA, CLIP, CLIP_SIZE, CUSTOMER, MiB
from report import Figure, paired, say

from gateway import workers

BENCH = Path(__file__).resolve().parent
RUNS = 5
ACCEL_PREFIX = "/_footage_internal/"  # FOOTGW_ACCEL_PREFIX's default
STREAM_RUNS = 9  # a 256 MiB stream takes a fraction of a second: more pairs, steadier ratios
RANGED_SECONDS = 4.0
BUCKET = "footage-bench"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
RSS_STREAMS = 16
# The ranged figures' gateway and bare app each run this many processes on their one socket
# (`serve --workers`): BENCH_WORKERS, or as a deployment defaults to, every CPU available.
WORKERS = int(os.environ.get("BENCH_WORKERS", "0")) or workers.available_cpus()


def clip_path(clip: str = CLIP) -> str:
    return f"/{CUSTOMER}/{CAMERA}/{clip}"


def mib_per_s(fetched: httpclient.Fetched, expected: int) -> float:
    if fetched.status != 200 or fetched.body_bytes != expected:
        raise RuntimeError(f"stream failed: status {fetched.status}, {fetched.body_bytes} bytes")
    return expected / MiB / fetched.seconds


# -- figures ------------------------------------------------------------------------------------


def stream_figures(
    world: fixtures.World,
    gateway: servers.Server,
    nginx: servers.Server | None,
    fileresponse: servers.Server,
) -> list[Figure]:
    say("streaming one 256 MiB clip: gateway vs nginx sendfile, vs bare FileResponse")

    def gw() -> float:
        got = httpclient.get(gateway.url + "/v1/footage" + clip_path(), world.owner_headers())
        return mib_per_s(got, CLIP_SIZE)

    def direct(server: servers.Server) -> Callable[[], float]:
        return lambda: mib_per_s(httpclient.get(server.url + clip_path()), CLIP_SIZE)

    figures = []
    if nginx is not None:
        ours, theirs = paired(gw, direct(nginx), STREAM_RUNS)
        figures.append(
            Figure(
                "256 MiB clip, file store, vs nginx sendfile",
                "MiB/s",
                ours,
                "nginx sendfile",
                theirs,
                0.7,
            )
        )
    else:
        ours = [gw() for _ in range(STREAM_RUNS)]
        figures.append(
            Figure(
                "256 MiB clip, file store, vs nginx sendfile",
                "MiB/s",
                ours,
                "nginx not installed: baseline missing",
                None,
                0.7,
            )
        )
    ours, theirs = paired(gw, direct(fileresponse), STREAM_RUNS)
    figures.append(
        Figure(
            "256 MiB clip, file store, vs bare FileResponse",
            "MiB/s",
            ours,
            "bare Starlette FileResponse",
            theirs,
            3.0,
        )
    )
    return figures


def accel_figure(
    world: fixtures.World, front: servers.Server | None, nginx: servers.Server | None
) -> list[Figure]:
    """The same clip with FOOTGW_DELIVERY=accel: through nginx, which asks the gateway (token,
    policy, durable access.decision) and then sends the file itself with sendfile."""
    if front is None or nginx is None:
        say("nginx is not installed: no accel figure in this run")
        return []
    say("streaming one 256 MiB clip in accel mode (nginx after the gateway's decision) vs nginx")

    def accel() -> float:
        got = httpclient.get(front.url + "/v1/footage" + clip_path(), world.owner_headers())
        return mib_per_s(got, CLIP_SIZE)

    def direct() -> float:
        return mib_per_s(httpclient.get(nginx.url + clip_path()), CLIP_SIZE)

    ours, theirs = paired(accel, direct, STREAM_RUNS)
    name = "256 MiB clip, file store, accel mode (nginx sends after the decision), vs nginx"
    return [Figure(name, "MiB/s", ours, "nginx sendfile", theirs, 0.7)]


def s3_figure(world: fixtures.World, gateway: servers.Server, moto: servers.Server) -> Figure:
    say("streaming the same clip from S3 (moto): gateway vs boto3 directly")
    client = boto3.session.Session(**_s3_session()).client(
        "s3", endpoint_url=moto.url, config=Config(s3={"addressing_style": "path"})
    )

    def gw() -> float:
        got = httpclient.get(gateway.url + "/v1/footage" + clip_path(), world.owner_headers())
        return mib_per_s(got, CLIP_SIZE)

    def boto() -> float:
        began = time.perf_counter()
        body = client.get_object(Bucket=BUCKET, Key=f"{CUSTOMER}/{CAMERA}/{CLIP}")["Body"]
        total = 0
        while chunk := body.read(MiB):
            total += len(chunk)
        if total != CLIP_SIZE:
            raise RuntimeError(f"boto3 read {total} bytes")
        return CLIP_SIZE / MiB / (time.perf_counter() - began)

    ours, theirs = paired(gw, boto, STREAM_RUNS)
    return Figure(
        "256 MiB clip, S3 (moto), vs boto3 direct",
        "MiB/s",
        ours,
        "boto3 get_object from moto",
        theirs,
        0.85,
    )


def _s3_session() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def audit_head(data_dir: Path) -> tuple[int, int]:
    """(last seq, allowed access.decision events so far) in a gateway's audit log."""
    with contextlib.closing(
        sqlite3.connect(f"file:{data_dir / 'gateway.db'}?mode=ro", uri=True)
    ) as db:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()[0]
        allowed = db.execute(
            "SELECT COUNT(*) FROM audit_events WHERE type = 'access.decision'"
            " AND decision = 'allow'"
        ).fetchone()[0]
    return int(seq), int(allowed)


def ranged_figures(
    world: fixtures.World,
    gateway: servers.Server,
    data_dir: Path,
    pread: servers.Server,
    workdir: Path,
    label: str,
) -> list[Figure]:
    client = "wrk" if load.wrk_binary() else "an asyncio client (wrk not installed)"
    say(f"64 KiB ranged reads, 32 clients ({client}), {label}: gateway vs bare one-pread app")
    agents = [world.agent_headers(i) for i in range(fixtures.AGENTS)]
    p99s: list[float] = []
    events_per_s: list[float] = []
    problems: list[str] = []

    def gw() -> float:
        seq0, allowed0 = audit_head(data_dir)
        result = load.run_load(
            gateway.url + "/v1/footage" + clip_path(), agents, CLIP_SIZE, RANGED_SECONDS, workdir
        )
        time.sleep(0.3)  # let the last access.complete events land
        seq1, allowed1 = audit_head(data_dir)
        if result.bad:
            problems.append(f"{result.bad} gateway answers were not 206")
        if allowed1 - allowed0 < result.requests:
            problems.append(
                f"{result.requests} views served but only "
                f"{allowed1 - allowed0} allowed decisions committed"
            )
        p99s.append(result.p99_ms)
        events_per_s.append((seq1 - seq0) / result.seconds)
        return result.rps

    def bare() -> float:
        result = load.run_load(pread.url + clip_path(), agents, CLIP_SIZE, RANGED_SECONDS, workdir)
        if result.bad:
            problems.append(f"{result.bad} bare-app answers were not 206")
        return result.rps

    ours, theirs = paired(gw, bare, RUNS)
    p99s, events_per_s = p99s[1:], events_per_s[1:]  # drop the warm-up run
    for problem in problems:
        say(f"PROBLEM: {problem}")
    rps = Figure(
        f"64 KiB ranged reads, 32 clients, full checks + durable audit, {label}",
        "req/s",
        ours,
        f"bare one-pread Starlette app, {WORKERS} workers",
        theirs,
        0.5,
        valid=not problems,
    )
    p99 = Figure(
        f"64 KiB ranged reads, 32 clients, p99 latency, {label}",
        "ms",
        p99s,
        "limit",
        None,
        1.0,
        goal_text="≤ 50 ms",
        lower_is_better=True,
        limit=50.0,
    )
    reality = Figure(
        f"audit events committed/s during those reads (2 per view), {label}",
        "events/s",
        events_per_s,
        "— (bounded by the request rate)",
        None,
        None,
    )
    return [rps, p99, reality]


def ranged_group(
    world: fixtures.World,
    root: Path,
    logs: Path,
    pread: servers.Server,
    started: list[servers.Server],
) -> list[Figure]:
    """The ranged figures with WORKERS workers, outside and then inside working hours, each on
    a gateway of its own (a fresh data dir) with the shipped detection rules."""
    figures: list[Figure] = []
    for when in ("outside", "inside"):
        policies, zone = fixtures.policies_at(world, when)
        data_dir = fixtures.make_data_dir(world, root / f"gateway-ranged-{when}")
        env = world.env(data_dir, FOOTGW_WORKERS=str(WORKERS), FOOTGW_POLICY_DIR=str(policies))
        gateway = servers.start_gateway(f"gateway-ranged-{when}", env, logs)
        started.append(gateway)
        label = f"{WORKERS} workers, {when} working hours ({zone})"
        figures += ranged_figures(world, gateway, data_dir, pread, root, label)
        gateway.stop()
    return figures


def peak_rss(pid: int, action: Callable[[], None]) -> float:
    """The process's peak RSS in MiB while `action` runs (VmHWM reset first, else sampled)."""
    status = Path(f"/proc/{pid}/status")
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (Linux ≥ 4.0)
        exact = True
    except OSError:
        exact = False
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            samples.append(_status_kib(status, "VmRSS"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        done.set()
        sampler.join()
    peak = _status_kib(status, "VmHWM") if exact else max(samples, default=0)
    return peak / 1024


def _status_kib(status: Path, field: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_figures(world: fixtures.World, gateway: servers.Server, runs: int) -> list[Figure]:
    before = _status_kib(Path(f"/proc/{gateway.pid}/status"), "VmRSS") / 1024
    say(
        f"peak RSS while {RSS_STREAMS} clients each stream a 256 MiB and then a 1 GiB clip "
        f"(the gateway holds {before:.0f} MiB before, after every figure above)"
    )
    peaks: dict[int, list[float]] = {256: [], 1024: []}
    for size in (256, 1024):
        requests = [
            (
                gateway.url + "/v1/footage" + clip_path(fixtures.rss_clip(size, i)),
                world.owner_headers(),
            )
            for i in range(RSS_STREAMS)
        ]

        def stream_all(
            requests: list[tuple[str, dict[str, str]]] = requests, size: int = size
        ) -> None:
            for got in httpclient.get_many(requests):  # type: ignore[arg-type]
                if got.status != 200 or got.body_bytes != size * MiB:
                    raise RuntimeError(f"RSS stream failed: {got}")

        for _ in range(runs):
            peaks[size].append(peak_rss(gateway.pid, stream_all))
    return [
        Figure(
            f"peak RSS, {RSS_STREAMS} clients × 256 MiB clip",
            "MiB",
            peaks[256],
            "limit",
            None,
            1.0,
            goal_text="≤ 150 MiB",
            lower_is_better=True,
            limit=150.0,
        ),
        Figure(
            f"peak RSS, {RSS_STREAMS} clients × 1 GiB clip",
            "MiB",
            peaks[1024],
            "limit",
            None,
            1.0,
            goal_text="≤ 150 MiB",
            lower_is_better=True,
            limit=150.0,
        ),
        Figure(
            "peak RSS, 1 GiB vs 256 MiB clips (flat in clip size)",
            "MiB",
            peaks[1024],
            "peak RSS with 256 MiB clips",
            peaks[256],
            0.9,
            goal_text="≥ 0.9 (flat)",
            lower_is_better=True,
        ),
    ]


def micro_figures(world: fixtures.World, data_dir: Path, workdir: Path) -> list[Figure]:
    say("in-process: authn + authz per request (10,000 grants); audit appends, 32 writers")
    out = workdir / "micro.json"
    with open(workdir / "micro.log", "wb") as log:
        subprocess.run(
            [sys.executable, str(BENCH / "micro.py"), str(world.root), str(data_dir), str(out)],
            stderr=log,
            check=True,
            timeout=300,
        )
    data = json.loads(out.read_text())
    return [
        Figure(
            "authn + authz per request (known token, 10,000 grants)",
            "µs",
            [s * 1e6 for s in data["auth_warm_s"]],
            "limit",
            None,
            1.0,
            goal_text="≤ 300 µs",
            lower_is_better=True,
            limit=300.0,
        ),
        Figure(
            "authn + authz per request (new token: EdDSA verify)",
            "µs",
            [s * 1e6 for s in data["auth_cold_s"]],
            "— (for information)",
            None,
            None,
        ),
        Figure(
            "durable audit appends, 32 concurrent writers",
            "events/s",
            data["audit_eps"],
            "goal",
            None,
            1.0,
            goal_text="≥ 20,000/s",
            limit=20_000.0,
        ),
    ]


# -- set-up -------------------------------------------------------------------------------------


def upload_to_moto(world: fixtures.World, moto: servers.Server) -> None:
    client = boto3.session.Session(**_s3_session()).client(
        "s3", endpoint_url=moto.url, config=Config(s3={"addressing_style": "path"})
    )
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(world.clip_path), BUCKET, f"{CUSTOMER}/{CAMERA}/{CLIP}")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


GROUPS = ("stream", "s3", "ranged", "playback", "micro", "rss", "pgchain")


def main(argv: list[str]) -> int:
    groups = set(argv) or set(GROUPS)  # e.g. `python bench/run.py ranged micro` while tuning
    if groups - set(GROUPS):
        print(f"usage: run.py [{' '.join(GROUPS)}]...", file=sys.stderr)
        return 2
    began = time.monotonic()
    info = results.RunInfo.start(groups, GROUPS, BENCH.parent, datetime.now(UTC))
    say(
        f"{info.cores} cores, load average {load_average()}, "
        f"commit {info.commit} (uncommitted changes: {info.dirty})"
    )
    _record_clients_and_baselines(info, groups)
    with tempfile.TemporaryDirectory(prefix="footgw-bench-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        say("seeding clips, keys and 10,000 grants")
        world = fixtures.make_world(root)
        file_dir = fixtures.make_data_dir(world, root / "gateway-file")
        s3_dir = fixtures.make_data_dir(world, root / "gateway-s3", grants=False)
        micro_dir = fixtures.make_data_dir(world, root / "micro")
        started: list[servers.Server] = []
        try:
            say("starting moto, the gateways, nginx and the bare apps")
            moto = servers.start_moto(logs)
            started.append(moto)
            upload_to_moto(world, moto)
            gateway = servers.start_gateway("gateway-file", world.env(file_dir), logs)
            started.append(gateway)
            gateway_s3 = servers.start_gateway(
                "gateway-s3",
                world.env(
                    s3_dir,
                    FOOTGW_STORAGE=f"s3://{BUCKET}",
                    FOOTGW_S3_ENDPOINT_URL=moto.url,
                    **S3_ENV,
                ),
                logs,
            )
            started.append(gateway_s3)
            nginx = servers.start_nginx(world.footage, logs)
            if nginx is None:
                say("nginx is not installed: its baseline is missing from this run")
            else:
                started.append(nginx)
            if "stream" in groups:
                why = "nginx not installed"
                info.baseline("nginx sendfile", ran=nginx is not None, why=why)
            accel_front = None
            if nginx is not None and "stream" in groups:
                accel_dir = fixtures.make_data_dir(world, root / "gateway-accel", grants=False)
                accel_env = world.env(accel_dir, FOOTGW_DELIVERY="accel")
                accel_gateway = servers.start_gateway("gateway-accel", accel_env, logs)
                started.append(accel_gateway)
                accel_front = servers.start_nginx_accel(
                    accel_gateway, world.footage, ACCEL_PREFIX, logs
                )
                if accel_front is not None:
                    started.append(accel_front)
            fileresponse = servers.start_baseline(
                "fileresponse", world.footage, world.clip_path, logs
            )
            started.append(fileresponse)
            pread = servers.start_baseline(
                "pread", world.footage, world.clip_path, logs, workers=WORKERS
            )
            started.append(pread)

            figures: list[Figure] = []
            if "stream" in groups:
                figures += stream_figures(world, gateway, nginx, fileresponse)
                figures += accel_figure(world, accel_front, nginx)
            if "s3" in groups:
                figures.append(s3_figure(world, gateway_s3, moto))
            gateway_s3.stop()
            moto.stop()
            if "ranged" in groups:
                figures += ranged_group(world, root, logs, pread, started)
            if "playback" in groups:
                # Ranged reads and starts on WORKERS workers, as the bare app they are paired
                # with; the one stream on one process, as nginx (worker_processes 1).
                play_dir = fixtures.make_data_dir(world, root / "gateway-playback")
                play_env = world.env(play_dir, FOOTGW_WORKERS=str(WORKERS))
                workers = servers.start_gateway("gateway-playback", play_env, logs)
                started.append(workers)
                figures += playback.playback_figures(
                    world,
                    workers.url,
                    play_dir,
                    pread.url,
                    WORKERS,
                    gateway.url,
                    nginx.url if nginx else None,
                    root,
                )
                workers.stop()
            if "micro" in groups:
                figures += micro_figures(world, micro_dir, root)
            if "rss" in groups:
                figures += rss_figures(world, gateway, RUNS)
        finally:
            for server in reversed(started):
                server.stop()
    # After the servers stopped: its replicas want every core (bench/pg_chain.py, docs/scale.md).
    pgchain = pg_chain.for_full_bench(say) if "pgchain" in groups else None
    print()
    print(report.table(figures))
    print()
    info.seconds = time.monotonic() - began
    info.load_average_end = load_average()
    written = results.save(BENCH, info, figures)  # a partial run never touches results.json
    if pgchain is not None:
        for path in written:
            pg_chain.add_to_results(path, pgchain)
    missed = [f.name for f in figures if f.met is False]
    say(
        f"done in {info.seconds:.0f} s, load average {info.load_average_end}; "
        f"{len(missed)} goal(s) missed; wrote "
        + ", ".join(str(path.relative_to(BENCH)) for path in written)
        + ("" if info.complete else " (a partial run: results.json untouched)")
    )
    return 0


def _record_clients_and_baselines(info: results.RunInfo, groups: set[str]) -> None:
    """Which clients this run drives the load with, and the baselines of the groups not run."""
    streams = "bench/httpclient.py (raw-socket GET into one reused buffer)"
    if groups & {"stream", "s3", "rss"}:
        info.client("streams", streams)
    if groups & {"ranged", "playback"}:
        wrk = load.wrk_binary()
        ranged = results.wrk_version(wrk) if wrk else "asyncio client (wrk not installed)"
        info.client("ranged", ranged)
    if "s3" in groups:
        info.client("s3 baseline", results.python_client("boto3 get_object, body.read(1 MiB)"))
    named = {
        "stream": ("nginx sendfile", "bare Starlette FileResponse"),
        "s3": ("boto3 get_object from moto",),
        "ranged": (f"bare one-pread Starlette app, {WORKERS} workers",),
        "playback": (f"bare one-pread Starlette app, {WORKERS} workers",),
    }
    for group, names in named.items():
        for name in names:
            ran = group in groups and name != "nginx sendfile"  # nginx: once it has started
            info.baseline(name, ran=ran, why=None if ran else f"group {group!r} not run")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
