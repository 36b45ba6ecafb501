"""Where a durable audit append's time goes, step by step, this tree beside an earlier commit.

    .venv/bin/python bench/audit_parts.py [BASE_COMMIT] [ROUNDS]     # default: main, 2 rounds

bench/audit_ab.py's figure (32 writers awaiting AuditLog.append), run in alternating child
processes for both trees, with the SQLite writer's batch timed step by step: BEGIN IMMEDIATE,
the head, sealing (canonical JSON and sha256), the INSERT, the log lines rendered before COMMIT,
the COMMIT (WAL pages written and synced); the writer's whole batch; and the time between two
batches, when the writer waits for the event loop (futures resolved, each writer's next event
made and queued). Each as µs per event. The steps are timed by replacing the store's
`_commit_sqlite` with a copy that reads the clock between them (the same statements, in the
same order), so this needs a tree whose store has that function. Prints a table and keeps it
under bench/runs/<utc>-audit-parts.json (bench/results.py) with both commits and the load.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
STEPS = ("begin", "head", "seal", "insert", "lines", "commit", "batch", "between")


def child(data_root: Path) -> None:
    """In a child process: audit_ab's figure with the writer's steps timed; prints µs/event."""
    import audit_ab

    from gateway.audit import log as audit_log
    from gateway.audit import store

    spent = dict.fromkeys(STEPS, 0.0)
    counted = {"events": 0}
    last_end = {"at": 0.0}

    def timed_commit(db: Any, events: Any) -> Any:
        from gateway.audit.chain import HEAD_SQL, head_from_row, seal_batch

        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        t1 = time.perf_counter()
        head = head_from_row(db.execute(HEAD_SQL).fetchone())
        t2 = time.perf_counter()
        sealed, bodies = seal_batch(events, head)
        t3 = time.perf_counter()
        db.executemany(store._INSERT_SQL, map(store._values, sealed, bodies))
        for row in store.companions():
            db.execute(row.sql("?"), tuple(row.values.values()))
        t4 = time.perf_counter()
        hook = store._before_commit.get()
        if hook is not None:
            hook(sealed, bodies)
        t5 = time.perf_counter()
        db.execute("COMMIT")
        t6 = time.perf_counter()
        took_each = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
        for step, took in zip(STEPS[:6], took_each, strict=True):
            spent[step] += took
        return sealed

    write = audit_log.AuditLog._write

    def timed_write(self: Any, batch: Any) -> None:
        began = time.perf_counter()
        if last_end["at"]:
            spent["between"] += began - last_end["at"]
        write(self, batch)
        last_end["at"] = time.perf_counter()
        spent["batch"] += last_end["at"] - began
        counted["events"] += len(batch)

    store._commit_sqlite = timed_commit  # type: ignore[attr-defined]
    audit_log.AuditLog._write = timed_write  # type: ignore[method-assign]
    audit_ab.RUNS_PER_CHILD = 3
    with contextlib.redirect_stdout(sys.stderr):
        audit_ab.child(data_root)  # prints its events/s: sent to stderr, with the logs
    events = max(1, counted["events"])
    print(json.dumps({step: spent[step] / events * 1e6 for step in STEPS}))


def main(base: str, rounds: int) -> None:
    import audit_ab
    import results

    began = datetime.now(UTC)
    load_start = results.load_average()
    head, dirty = results.git_state(BENCH.parent)
    with tempfile.TemporaryDirectory(prefix="footgw-audit-parts-") as tmp:
        root = Path(tmp)
        (root / "base").mkdir()
        base_commit = audit_ab.archive(base, root / "base")
        trees = {f"base {base_commit[:7]}": root / "base", "this tree": BENCH.parent}
        got: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for i in range(rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(root / f"data-{i}-{len(name)}")],
                    env={**os.environ, "PYTHONPATH": str(trees[name])},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    check=True,
                    timeout=600,
                ).stdout
                got[name].append(json.loads(out))
    summary = {
        "figure": "durable audit appends, 32 writers: µs per event by step (bench/audit_parts.py)",
        "started_utc": results.utc_text(began),
        "commit": head,
        "dirty": dirty,
        "base_commit": base_commit,
        "cores": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": results.load_average(),
        "runs": got,
    }
    stamp = summary["started_utc"].replace("-", "").replace(":", "")
    path = BENCH / results.RUNS / f"{stamp}-audit-parts.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"load average {load_start} -> {summary['load_average_end']}; wrote {path.name}")
    print("| µs per event | " + " | ".join(trees) + " |")
    print("| --- |" + " --- |" * len(trees))
    for step in STEPS:
        cells = [_range([run[step] for run in got[name]]) for name in trees]
        print(f"| {step} | " + " | ".join(cells) + " |")


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{statistics.median(values):.1f} ({low:.1f}–{high:.1f})"


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]))
    else:
        main(
            sys.argv[1] if len(sys.argv) > 1 else "main",
            int(sys.argv[2]) if len(sys.argv) > 2 else 2,
        )
