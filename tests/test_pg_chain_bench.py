"""bench/pg_chain.py, the audit chain's ceiling on one PostgreSQL (docs/scale.md), in small.

The benchmark runs as a user runs it (its own process, real replica processes on the test
server), with 1 and 2 replicas and a few hundred appends, and must come back with every chain
verified; its summary must refuse to call a run verified when a chain failed or lost events.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.cluster import REPO, clean_environ, require_postgres

SCRIPT = REPO / "bench" / "pg_chain.py"
FIGURES = REPO / "bench" / "pg_chain_figures.py"


def _figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pg_chain_figures", FIGURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.postgres
def test_one_and_two_replicas_append_and_every_chain_verifies(tmp_path: Path) -> None:
    url = require_postgres()
    out = tmp_path / "pgchain.json"
    argv = [sys.executable, str(SCRIPT), "--replicas", "1", "2", "--writers", "4"]
    argv += ["--seconds", "0.3", "--runs", "1", "--url", url, "--out", str(out)]
    done = subprocess.run(
        argv, env=clean_environ({}), capture_output=True, text=True, timeout=180, cwd=REPO
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["verified"] is True
    assert [row["replicas"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        shared, own = (
            [r for r in row["runs"] if r["chain"] == kind] for kind in ("shared", "one per replica")
        )
        (shared,), (own,) = shared, own
        # One chain for the fleet, one per replica for the baseline; each walked in full.
        assert len(shared["chains"]) == 1
        assert len(own["chains"]) == row["replicas"]
        for run in (shared, own):
            assert run["appends"] > 0 and run["appends_per_s"] > 0
            assert all(chain["ok"] and chain["checkpoint_valid"] for chain in run["chains"])
            # Every append a writer saw return is in a verified chain (plus the warm-up's).
            assert sum(chain["events"] for chain in run["chains"]) >= run["appends"]
    assert "| 2 |" in done.stdout  # the printed table has the two-replica row


def test_a_failed_chain_or_a_lost_event_is_never_reported_verified() -> None:
    figures = _figures()
    replica = {
        "appends": 100,
        "seconds": 1.0,
        "latencies_ms": [1.0] * 100,
        "fast_commits": 10,
        "locked_commits": 0,
        "collisions": 0,
    }
    sizes = {"body_bytes": 800.0, "table_bytes_per_event": 1800.0}
    intact = {"ok": True, "events": 164}
    broken = {"ok": False, "events": 50}

    def summary(chain: dict[str, object], new_events: int) -> dict[str, object]:
        return figures.summary(1, True, [replica], [chain], new_events, 0, sizes)

    assert summary(intact, 100)["verified"] is True
    assert summary(broken, 100)["verified"] is False
    assert summary(intact, 99)["verified"] is False  # an append the chain does not hold


def test_it_says_so_and_exits_2_without_a_postgresql(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", unreachable, "--out", str(tmp_path / "x.json")],
        env=clean_environ({}),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "no PostgreSQL" in done.stderr
    assert not (tmp_path / "x.json").exists()


def test_the_full_bench_adds_the_curve_to_results_json_without_each_runs_detail(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(REPO / "bench"))  # pg_chain imports its sibling, as run.py does
    try:
        spec = importlib.util.spec_from_file_location("pg_chain", SCRIPT)
        assert spec is not None and spec.loader is not None
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(REPO / "bench"))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"cores": 2, "figures": [{"name": "kept"}]}))
    run = {"utc": "2026-12-01T04:00:00Z", "verified": True, "rows": [{"replicas": 1, "runs": []}]}
    saved = tmp_path / "runs" / "pgchain.json"
    bench.add_to_results(results, _figures().summary_for_results(run, saved))
    data = json.loads(results.read_text())
    assert data["figures"] == [{"name": "kept"}]  # the other figures stay as written
    assert data["pgchain"]["rows"] == [{"replicas": 1}]  # the curve, not every run
    assert data["pgchain"]["detail"] == str(saved)  # where every run's detail is
