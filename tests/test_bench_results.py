"""bench/results.py: every run records what it measured and where; a partial run never writes
results.json (docs/benchmarks.md, "Reading the results")."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
GROUPS = ("stream", "s3", "ranged", "micro", "rss")
WHEN = datetime(2026, 12, 1, 4, 15, 2, 123456, tzinfo=UTC)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # results.py imports `report` by name, as bench/run.py does
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """bench/report.py and bench/results.py, imported by path (bench/ is scripts, not a package)."""
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the bench's names leave with the test
    yield _load("report"), _load("results")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit and a bench/ directory, as the real one has."""
    root = tmp_path / "repo"
    (root / "bench").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "README.md").write_text("x\n")
    git(root, "add", "README.md")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    return root


def figures(report: ModuleType) -> list[object]:
    return [
        report.Figure("s3", "MiB/s", [90.0, 80.0], "boto3", [100.0, 100.0], 0.85),
        report.Figure("appends", "events/s", [21000.0], "goal", None, 1.0, limit=20000.0),
    ]


def test_a_partial_run_goes_under_runs_and_leaves_results_json_alone(bench, repo) -> None:
    report, results = bench
    kept = repo / "bench" / "results.json"
    kept.write_text('{"the": "last full run"}\n')
    info = results.RunInfo.start({"micro", "s3"}, GROUPS, repo, WHEN)
    info.baseline("boto3 get_object from moto", ran=True)
    info.baseline("nginx sendfile", ran=False, why="group 'stream' not run")

    written = results.save(repo / "bench", info, figures(report))

    assert written == [repo / "bench" / "runs" / "20261201T041502Z-s3-micro.json"]
    assert kept.read_text() == '{"the": "last full run"}\n'  # untouched, byte for byte
    data = json.loads(written[0].read_text())
    assert data["run"]["groups"] == ["s3", "micro"] and data["run"]["complete"] is False
    assert data["run"]["baselines"] == {
        "boto3 get_object from moto": {"ran": True, "why": None},
        "nginx sendfile": {"ran": False, "why": "group 'stream' not run"},
    }


def test_a_full_run_is_results_json_and_a_run_file_with_its_provenance(bench, repo) -> None:
    report, results = bench
    info = results.RunInfo.start(set(GROUPS), GROUPS, repo, WHEN)
    info.client("ranged", "wrk 4.1.0")
    info.baseline("nginx sendfile", ran=False, why="nginx not installed")
    info.load_average_end, info.seconds = "0.50 0.40 0.30", 176.04

    written = results.save(repo / "bench", info, figures(report))

    assert written == [
        repo / "bench" / "runs" / "20261201T041502Z-all.json",
        repo / "bench" / "results.json",
    ]
    assert written[0].read_text() == written[1].read_text()
    data = json.loads(written[1].read_text())
    run = data["run"]
    assert run["commit"] == git(repo, "rev-parse", "HEAD")
    assert run["dirty"] is False  # measured at the start: everything committed then
    assert run["started_utc"] == "2026-12-01T04:15:02Z" and run["seconds"] == 176.0
    assert run["complete"] is True and run["groups"] == list(GROUPS)
    assert run["cores"] >= run["cores_available"] >= 1 and data["cores"] == run["cores"]
    assert run["clients"] == {"ranged": "wrk 4.1.0"}
    assert run["baselines"]["nginx sendfile"] == {"ran": False, "why": "nginx not installed"}
    assert [(f["ratio"], f["met"]) for f in data["figures"]] == [(0.85, True), (1.05, True)]


def test_the_commit_and_whether_the_tree_differs_from_it(bench, repo, tmp_path) -> None:
    _, results = bench
    head = git(repo, "rev-parse", "HEAD")
    (repo / "bench" / ".keep").write_text("")
    git(repo, "add", "bench/.keep")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "two")
    head = git(repo, "rev-parse", "HEAD")
    assert results.git_state(repo) == (head, False)
    (repo / "README.md").write_text("changed\n")
    assert results.git_state(repo) == (head, True)
    git(repo, "checkout", "-q", "README.md")
    (repo / "new.txt").write_text("untracked\n")
    assert results.git_state(repo) == (head, True)
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert results.git_state(outside) == (None, None)


def test_the_run_start_says_whether_it_is_complete(bench, repo) -> None:
    _, results = bench
    assert results.RunInfo.start(set(GROUPS), GROUPS, repo, WHEN).complete
    partial = results.RunInfo.start({"rss"}, GROUPS, repo, WHEN)
    assert not partial.complete and partial.groups == ("rss",)
    assert results.run_file_name(partial) == "20261201T041502Z-rss.json"
