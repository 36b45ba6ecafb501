"""bench/pg_chain.py's figures: one run's summary, the medians per replica count, the table.

Kept apart from the orchestration so the rules that decide "verified" can be read (and tested)
on their own: a run is verified only when every chain walked clean and held every append a
writer saw return.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def summary(
    replicas: int,
    shared: bool,
    results: Sequence[dict[str, Any]],
    verified: Sequence[dict[str, Any]],
    new_events: int,
    wal_bytes: int,
    sizes: dict[str, float],
) -> dict[str, Any]:
    appends = sum(r["appends"] for r in results)
    seconds = max(r["seconds"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    holds = sorted(x for r in results for x in r.get("lock_holds_ms", []))
    commits = sum(r["fast_commits"] + r["locked_commits"] for r in results)
    ok = all(v["ok"] for v in verified) and new_events >= appends
    return {
        "replicas": replicas,
        "chain": "shared" if shared else "one per replica",
        "appends_per_s": round(appends / seconds, 1),
        "appends": appends,
        # Appends that passed AuditLog's timeout: each would have been a 503, nothing served.
        "failed_appends": sum(r.get("failed", 0) for r in results),
        "seconds": round(seconds, 3),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "events_per_commit": round(appends / commits, 1) if commits else None,
        # With one shared chain every commit holds the one lock: 1 / commits_per_s bounds the
        # time a commit holds it, once the lock is saturated.
        "commits_per_s": round(commits / seconds, 1),
        # Locked-path commits only: the lock held from the head read to COMMIT's return.
        "lock_hold_ms_p50": round(statistics.median(holds), 2) if holds else None,
        "fast_commits": sum(r["fast_commits"] for r in results),
        "locked_commits": sum(r["locked_commits"] for r in results),
        "collisions": sum(r["collisions"] for r in results),
        "wal_bytes_per_event": round(wal_bytes / max(1, new_events), 1),
        **{k: round(v, 1) for k, v in sizes.items()},
        "verified": ok,
        "chains": list(verified),
    }


def row(n: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    shared, own = runs["shared"], runs["independent"]

    def median(key: str, of: list[dict[str, Any]]) -> float:
        return round(statistics.median(r[key] for r in of), 1)

    pairs = [s["appends_per_s"] / o["appends_per_s"] for s, o in zip(shared, own, strict=True)]
    hold = _median_of([r["lock_hold_ms_p50"] for r in shared])
    commits_per_s = median("commits_per_s", shared)
    return {
        "replicas": n,
        "shared_appends_per_s": median("appends_per_s", shared),
        "shared_min_max": [
            min(r["appends_per_s"] for r in shared),
            max(r["appends_per_s"] for r in shared),
        ],
        "shared_p99_ms": median("p99_ms", shared),
        "shared_failed_appends": sum(r["failed_appends"] for r in shared),
        "independent_failed_appends": sum(r["failed_appends"] for r in own),
        "shared_events_per_commit": median("events_per_commit", shared),
        "shared_commits_per_s": commits_per_s,
        "shared_lock_hold_ms_p50": hold,
        # The share of the wall time some replica held the chain's lock (locked path): near 1,
        # the lock is the fleet's bottleneck and more replicas only queue behind it.
        "shared_lock_busy": round(commits_per_s * hold / 1000, 2) if hold is not None else None,
        "shared_collisions": sum(r["collisions"] for r in shared),
        "shared_locked_commits": sum(r["locked_commits"] for r in shared),
        "shared_fast_commits": sum(r["fast_commits"] for r in shared),
        "independent_appends_per_s": median("appends_per_s", own),
        "independent_p99_ms": median("p99_ms", own),
        "ratio_shared_to_independent": round(statistics.median(pairs), 3),
        "wal_bytes_per_event": median("wal_bytes_per_event", shared),
        "body_bytes": median("body_bytes", shared),
        "table_bytes_per_event": median("table_bytes_per_event", shared),
        "verified": all(r["verified"] for r in shared + own),
        "runs": shared + own,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| replicas | one shared chain: appends/s (min–max) | p99 ms | events/commit | "
        "lock held per commit, ms | lock busy | one chain per replica: appends/s | p99 ms | "
        "shared ÷ own | verified |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        low, high = r["shared_min_max"]
        lines.append(
            f"| {r['replicas']} | {r['shared_appends_per_s']:,.0f} ({low:,.0f}–{high:,.0f}) "
            f"| {r['shared_p99_ms']} | {r['shared_events_per_commit']} "
            f"| {_or_dash(r['shared_lock_hold_ms_p50'])} | {_or_dash(r['shared_lock_busy'])} "
            f"| {r['independent_appends_per_s']:,.0f} | {r['independent_p99_ms']} "
            f"| {r['ratio_shared_to_independent']:.2f} | {'yes' if r['verified'] else '**no**'} |"
        )
    return "\n".join(lines)


def save(result: dict[str, Any], out: Path | None) -> Path:
    """Write the run's JSON (with every run's detail) to out, or a new file in bench/runs/."""
    if out is None:
        stamp = result["utc"].replace(":", "").replace("-", "")
        out = BENCH / "runs" / f"pgchain-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def summary_for_results(result: dict[str, Any], saved: Path) -> dict[str, Any]:
    """What results.json keeps: the curve, without each run's detail."""
    rows = [{k: v for k, v in r.items() if k != "runs"} for r in result["rows"]]
    try:
        where = str(saved.resolve().relative_to(REPO))
    except ValueError:
        where = str(saved)
    return {**{k: v for k, v in result.items() if k != "rows"}, "rows": rows, "detail": where}


def _median_of(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def _or_dash(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"
