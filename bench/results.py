"""What a bench run says about itself, and where it is written (docs/benchmarks.md).

Every run records the commit it measured (and whether the tree had uncommitted changes), when it
ran (UTC), the machine's CPU count and load, which load client ran, and which baselines ran or
were missing and why, beside its figures. A full run is the latest `bench/results.json`; every
run, full or partial, is also kept as `bench/runs/<utc>-<groups>.json`, so a figure quoted
anywhere can be traced to the run that measured it. A partial run never touches results.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import Figure

RESULTS = "results.json"
RUNS = "runs"


@dataclass
class RunInfo:
    """One run's provenance: filled in as the run goes, written with its figures."""

    groups: tuple[str, ...]
    complete: bool
    started_utc: str
    commit: str | None
    dirty: bool | None
    cores: int
    cores_available: int
    load_average_start: str
    python: str = field(default_factory=platform.python_version)
    load_average_end: str = ""
    seconds: float = 0.0
    clients: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, groups: Iterable[str], all_groups: Sequence[str], repo: Path, now: datetime
    ) -> RunInfo:
        """The run's facts known before it measures anything."""
        chosen = tuple(g for g in all_groups if g in set(groups))
        commit, dirty = git_state(repo)
        return cls(
            groups=chosen,
            complete=set(chosen) == set(all_groups),
            started_utc=utc_text(now),
            commit=commit,
            dirty=dirty,
            cores=os.cpu_count() or 1,
            cores_available=available_cores(),
            load_average_start=load_average(),
        )

    def client(self, what: str, description: str) -> None:
        """Which client drove one kind of load (e.g. "ranged": "wrk 4.2.0")."""
        self.clients[what] = description

    def baseline(self, name: str, *, ran: bool, why: str | None = None) -> None:
        """Whether a baseline ran in this run; if not, why not."""
        self.baselines[name] = {"ran": ran, "why": None if ran else (why or "not run")}

    def as_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "started_utc": self.started_utc,
            "seconds": round(self.seconds, 1),
            "groups": list(self.groups),
            "complete": self.complete,
            "cores": self.cores,
            "cores_available": self.cores_available,
            "load_average_start": self.load_average_start,
            "load_average_end": self.load_average_end,
            "python": self.python,
            "clients": dict(self.clients),
            "baselines": dict(self.baselines),
        }


def save(bench_dir: Path, info: RunInfo, figures: Sequence[Figure]) -> list[Path]:
    """Write the run under bench/runs/ and, for a full run only, as bench/results.json."""
    data = {
        "run": info.as_json(),
        "cores": info.cores,  # kept where readers of earlier results.json files look for it
        "figures": [f.as_json() for f in figures],
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    runs = bench_dir / RUNS
    runs.mkdir(exist_ok=True)
    written = [runs / run_file_name(info)]
    if info.complete:
        written.append(bench_dir / RESULTS)
    for path in written:
        path.write_text(text)
    return written


def run_file_name(info: RunInfo) -> str:
    """`<utc>-<groups>.json`, e.g. 20261201T041502Z-s3-micro.json ("all" for a full run)."""
    stamp = info.started_utc.replace("-", "").replace(":", "")
    stamp = stamp.split(".")[0].rstrip("Z") + "Z"
    return f"{stamp}-{'all' if info.complete else '-'.join(info.groups)}.json"


def utc_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state(repo: Path) -> tuple[str | None, bool | None]:
    """(HEAD's commit, whether tracked or untracked files differ from it); None where unknown."""
    git = shutil.which("git")
    if git is None:
        return None, None
    try:
        head = subprocess.run(
            [git, "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        status = subprocess.run(
            [git, "-C", str(repo), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(status.strip())


def available_cores() -> int:
    """The CPUs this process may run on (a container or taskset may allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def wrk_version(binary: str) -> str:
    """`wrk 4.2.0` as wrk names itself (`wrk -v` prints it and exits 1), or just "wrk"."""
    try:
        out = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "wrk"
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split("Copyright")[0].strip() if first else "wrk"


def python_client(name: str) -> str:
    return f"{name} (Python {sys.version.split()[0]})"
