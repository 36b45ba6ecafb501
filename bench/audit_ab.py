"""Durable audit appends (32 writers), this tree against an earlier commit, in one run.

    .venv/bin/python bench/audit_ab.py [BASE_COMMIT] [ROUNDS]     # default: main, 5 rounds

The figure of `make bench`'s micro group (bench/micro.py's audit_run: 32 asyncio writers, each
awaiting AuditLog.append 150 times, on the gateway's own SQLite store with its commit hooks),
measured for both trees in alternating child processes, so load from other work on the machine
falls on both alike. The earlier tree is `git archive`d into a temporary directory and put first
on PYTHONPATH. Each child migrates a fresh database with its own tree's code. The result goes
under bench/runs/<utc>-audit-ab.json (bench/results.py) with both commits and the load.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUNS_PER_CHILD = 3  # after one unmeasured warm-up


def child(data_root: Path) -> None:
    """In a child process: build services as `serve` does and run the audit figure."""
    import fixtures
    import micro
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.logging_setup import configure_logging
    from gateway.services import build_services
    from gateway.settings import load_settings

    world_root = data_root / "world"
    if not world_root.exists():  # keys and policies only: this figure reads no clip
        world_root.mkdir(parents=True)
        key = Ed25519PrivateKey.generate()
        (world_root / "jwt-private.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (world_root / "jwt-public.pem").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        fixtures._policy_dir(world_root)
        (world_root / "footage").mkdir()
    world = fixtures.load_world(world_root)
    data_dir = fixtures.make_data_dir(world, data_root / f"data-{time.time_ns()}", grants=False)
    configure_logging("json")  # stderr: a file, as the parent started us

    async def main() -> list[list[float]]:
        services = build_services(load_settings(world.env(data_dir)))
        try:
            await micro.audit_run(services)
            return [await measured_run(services) for _ in range(RUNS_PER_CHILD)]
        finally:
            await services.close()

    try:
        import uvloop

        eps = uvloop.run(main())
    except ImportError:
        eps = asyncio.run(main())
    print(json.dumps(eps))


async def measured_run(services: object) -> list[float]:
    """One audit_run: events/s, and per event the process's CPU time (every thread) in µs and the
    bytes it wrote (write calls: the WAL, the database, the log lines). The last two hardly move
    with other work's load on the machine, where events/s does (its disk waits)."""
    import micro

    events = micro.AUDIT_WRITERS * micro.AUDIT_PER_WRITER
    cpu, wrote = time.process_time(), _written()
    eps = await micro.audit_run(services)  # type: ignore[arg-type]
    return [eps, (time.process_time() - cpu) / events * 1e6, (_written() - wrote) / events]


def _written() -> int:
    """wchar of /proc/self/io: bytes this process has passed to write calls (0 where absent)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("wchar")), 0)


def archive(commit: str, into: Path) -> str:
    """The commit's tree extracted into `into`; its full hash."""
    full = _git("rev-parse", commit)
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", full], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return full


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_child(tree: Path, data_root: Path, log: Path) -> list[list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with open(log, "ab") as err:
        out = subprocess.run(
            [sys.executable, str(BENCH / "audit_ab.py"), "--child", str(data_root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            check=True,
            timeout=600,
        ).stdout
    return [[float(x) for x in run] for run in json.loads(out)]


def main(base: str, rounds: int) -> None:
    import results

    began = datetime.now(UTC)
    load_start = results.load_average()
    head, dirty = results.git_state(REPO)
    with tempfile.TemporaryDirectory(prefix="footgw-audit-ab-") as tmp:
        root = Path(tmp)
        base_tree = root / "base"
        base_tree.mkdir()
        base_commit = archive(base, base_tree)
        trees = {"base": base_tree, "this tree": REPO}
        eps: dict[str, list[float]] = {name: [] for name in trees}
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        wrote: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                got = run_child(trees[name], root / name.replace(" ", "-"), root / "children.log")
                eps[name] += [run[0] for run in got]
                cpu[name] += [run[1] for run in got]
                wrote[name] += [run[2] for run in got]
                print(f"[{time.strftime('%H:%M:%S')}] {name}: {[round(run[0]) for run in got]}")
    pairs = [a / b for a, b in zip(eps["this tree"], eps["base"], strict=True)]
    summary = {
        "figure": "durable audit appends, 32 concurrent writers (bench/micro.py audit_run)",
        "unit": "events/s",
        "started_utc": results.utc_text(began),
        "commit": head,
        "dirty": dirty,
        "base_commit": base_commit,
        "cores": os.cpu_count(),
        "data_under": tempfile.gettempdir(),  # TMPDIR: /dev/shm takes the disk out of the figure
        "load_average_start": load_start,
        "load_average_end": results.load_average(),
        "this_tree": _side(eps, cpu, wrote, "this tree"),
        "base": _side(eps, cpu, wrote, "base"),
        "ratio_median_of_pairs": statistics.median(pairs),
    }
    runs = BENCH / results.RUNS
    runs.mkdir(exist_ok=True)
    stamp = summary["started_utc"].replace("-", "").replace(":", "")
    path = runs / f"{stamp}-audit-ab.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("this_tree", "base")}))
    print(
        f"this tree median {summary['this_tree']['median']:.0f} events/s, base median "
        f"{summary['base']['median']:.0f} events/s; wrote {path.relative_to(REPO)}"
    )
    for name in ("this_tree", "base"):
        side = summary[name]
        print(
            f"{name}: CPU {side['cpu_us_per_event_median']:.1f} µs/event, "
            f"written {side['written_bytes_per_event_median']:.0f} bytes/event"
        )


def _side(
    eps: dict[str, list[float]],
    cpu: dict[str, list[float]],
    wrote: dict[str, list[float]],
    name: str,
) -> dict[str, object]:
    return {
        "median": statistics.median(eps[name]),
        "runs": eps[name],
        "cpu_us_per_event_median": statistics.median(cpu[name]),
        "cpu_us_per_event": cpu[name],
        "written_bytes_per_event_median": statistics.median(wrote[name]),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]))
    else:
        main(
            sys.argv[1] if len(sys.argv) > 1 else "main",
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
