"""The audit chain's ceiling on one PostgreSQL: durable appends/s with 1, 2, 4 and 8 replicas.

    python bench/pg_chain.py                      # 1 2 4 8 replicas, 3 runs each, 5 s a run
    python bench/pg_chain.py --replicas 1 2 --seconds 1 --runs 1 --out /tmp/x.json

What a replica is here: a process (bench/pg_chain_replica.py) running the gateway's own audit
writer, exactly as `serve` builds it (AuditLog's group commit → AuditStore → PgAppender, with
the Checkpointer on its commit hook and every event a structured log line), with 32 concurrent
requests each awaiting `AuditLog.append` in a loop: the wait a footage request makes before its
first byte. Not whole `footage-gateway serve` processes: on a small machine, eight of them would
measure the HTTP path's Python (about 1.5 ms a request, docs/benchmarks.md), not the chain; the
writer alone puts every cycle into appends, so what flattens the curve is the chain.

The baseline, run beside each shared-chain run (the order alternating): the same N writer
processes, each appending to a chain of its own (its own schema and its own advisory lock key).
That is what one chain per shard would reach (docs/scale.md): if it grows with N while the
shared chain does not, the lock is the limit, not the machine.

After every run each chain is verified as `footage-gateway audit verify` does (every hash and
link, against the newest signed checkpoint), and the events the writers counted must all be in
it. Each run uses fresh schemas of the database in FOOTGW_TEST_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), dropped after. The figures are printed, and saved
as JSON in bench/runs/ (or --out); bench/run.py's `pgchain` group adds them to results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pg_chain_figures

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_ENV = "FOOTGW_TEST_DATABASE_URL"
REPLICAS = (1, 2, 4, 8)
WRITERS = 32  # concurrent requests awaiting an append, per replica
SECONDS = 5.0
RUNS = 3
READY_TIMEOUT = 120.0
SHARD_LOCK_BASE = 7302_000  # independent chains lock their own key (gateway.db's is 7302)

Say = Callable[[str], None]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the schemas ------------------------------------------------------------------------------


def with_search_path(url: str, schema: str) -> str:
    """The URL with libpq `options` that put `schema` first on the search_path."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def fresh_schemas(base_url: str, count: int) -> Iterator[list[str]]:
    """`count` new schemas, migrated by the gateway itself; yields their URLs; dropped after."""
    import sqlalchemy as sa

    from gateway import migrations
    from gateway.db import create_db_engine

    names = [f"footgw_bench_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    admin = create_db_engine(base_url)
    urls = [with_search_path(base_url, name) for name in names]
    try:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        for url in urls:
            engine = create_db_engine(url)
            try:
                migrations.migrate(engine)
            finally:
                engine.dispose()
        yield urls
    finally:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def _scalar(url: str, sql: str) -> Any:
    import sqlalchemy as sa

    from gateway.db import create_db_engine

    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _verify(url: str, env: dict[str, str]) -> dict[str, Any]:
    """The chain as `footage-gateway audit verify` sees it (every link, the newest checkpoint)."""
    from gateway.audit.tools import verify_log
    from gateway.settings import load_settings

    result, checkpoint = verify_log(load_settings({**env, "FOOTGW_DATABASE_URL": url}))
    return {
        "ok": result.ok,
        "events": result.events,
        "problem": result.problem,
        "checkpoint_seq": checkpoint.seq if checkpoint else None,
        "checkpoint_valid": checkpoint.valid if checkpoint else None,
    }


# -- one run -------------------------------------------------------------------------------------


def _spawn(
    replica: int, url: str, env: dict[str, str], args: argparse.Namespace, lock_key: int | None
) -> subprocess.Popen[str]:
    argv = [sys.executable, str(BENCH / "pg_chain_replica.py"), str(replica)]
    argv += [str(args.writers), str(args.seconds)] + ([str(lock_key)] if lock_key else [])
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    child_env.update(env, FOOTGW_DATABASE_URL=url, PYTHONPATH=str(REPO))
    log = (Path(env["FOOTGW_DATA_DIR"]) / f"replica-{replica}.log").open("wb")
    with log:
        return subprocess.Popen(
            argv,
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )


def _wait_line(proc: subprocess.Popen[str], what: str, log: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=READY_TIMEOUT)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"a replica exited {proc.returncode} before {what}:\n{tail}")
    return line.strip()


def _result(replica: int, proc: subprocess.Popen[str], log: Path, workdir: Path) -> Any:
    if _wait_line(proc, "its result", log) != "done":
        raise RuntimeError("a replica said something other than done")
    return json.loads((workdir / f"result-{replica}.json").read_text())


def run_once(
    replicas: int, shared: bool, base_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """N replicas on one chain (shared) or each on its own; appends/s, verified chains."""
    env = {
        "FOOTGW_DATA_DIR": str(workdir),
        "FOOTGW_CHECKPOINT_KEY_FILE": str(workdir / "checkpoint-key.pem"),  # shared, as deployed
    }
    with fresh_schemas(base_url, 1 if shared else replicas) as urls:
        procs = [
            _spawn(
                r,
                urls[0] if shared else urls[r],
                env,
                args,
                None if shared else SHARD_LOCK_BASE + r,
            )
            for r in range(replicas)
        ]
        try:
            logs = [workdir / f"replica-{r}.log" for r in range(replicas)]
            for proc, log in zip(procs, logs, strict=True):
                if _wait_line(proc, "ready", log) != "ready":
                    raise RuntimeError("a replica said something other than ready")
            seq0 = sum(
                int(_scalar(u, "SELECT COALESCE(MAX(seq), 0) FROM audit_events")) for u in urls
            )
            wal_began = _scalar(base_url, "SELECT pg_current_wal_lsn()::text")
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = [
                _result(r, proc, log, workdir)
                for r, (proc, log) in enumerate(zip(procs, logs, strict=True))
            ]
            for proc in procs:
                if proc.wait(timeout=READY_TIMEOUT) != 0:
                    raise RuntimeError(f"a replica exited {proc.returncode}")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        wal_bytes = int(_scalar(base_url, f"SELECT pg_current_wal_lsn() - '{wal_began}'::pg_lsn"))
        verified = [_verify(u, env) for u in urls]
        events = sum(v["events"] for v in verified)
        sizes = _sizes(urls[0])
    return pg_chain_figures.summary(
        replicas, shared, results, verified, events - seq0, wal_bytes, sizes
    )


def _sizes(url: str) -> dict[str, float]:
    """Stored bytes per event: the body column, and the table with its indexes and TOAST."""
    body = _scalar(url, "SELECT AVG(OCTET_LENGTH(body)) FROM audit_events")
    total = _scalar(url, "SELECT pg_total_relation_size('audit_events')::float8")
    rows = _scalar(url, "SELECT COUNT(*) FROM audit_events")
    return {"body_bytes": float(body), "table_bytes_per_event": total / max(1, int(rows))}


# -- the whole bench --------------------------------------------------------------------------


def database_url() -> str:
    return os.environ.get(URL_ENV, "").strip() or DEFAULT_URL


def reachable(url: str) -> str:
    """'' when PostgreSQL answers at url, else why not."""
    try:
        _scalar(url, "SELECT 1")
    except Exception as exc:  # any failure to connect: the group is skipped, saying why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def run_all(args: argparse.Namespace, out_say: Say = say) -> dict[str, Any]:
    """Every replica count, shared and independent runs interleaved; medians per count."""
    url = args.url or database_url()
    out_say(
        f"pgchain: {', '.join(map(str, args.replicas))} replicas × {args.writers} writers, "
        f"{args.seconds:g} s, {args.runs} run(s) each, shared chain vs one chain per replica"
    )
    rows: list[dict[str, Any]] = []
    error = ""
    with tempfile.TemporaryDirectory(prefix="footgw-pgchain-") as tmp:
        try:
            for n in args.replicas:
                rows.append(_count(n, url, args, Path(tmp), out_say))
        except RuntimeError as exc:  # a replica failed: keep the counts done, say what broke
            error = str(exc)
            out_say(f"pgchain: FAILED: {error}")
    return {
        "what": "durable audit appends/s on one PostgreSQL, N replica processes × "
        f"{args.writers} concurrent appenders each (bench/pg_chain.py)",
        "commit": _commit(),
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "load_average": _load_average(),
        "postgresql": _scalar(url, "SHOW server_version"),
        "synchronous_commit": _scalar(url, "SHOW synchronous_commit"),
        "writers_per_replica": args.writers,
        "seconds_per_run": args.seconds,
        "runs": args.runs,
        "rows": rows,
        "error": error,
        "verified": not error and all(r["verified"] for r in rows),
    }


def _count(n: int, url: str, args: argparse.Namespace, tmp: Path, out_say: Say) -> dict[str, Any]:
    """args.runs pairs of runs with n replicas, the order alternating; their row."""
    runs: dict[str, list[dict[str, Any]]] = {"shared": [], "independent": []}
    for i in range(args.runs):
        for shared in (True, False) if i % 2 == 0 else (False, True):
            workdir = tmp / f"n{n}-r{i}-{'shared' if shared else 'own'}"
            workdir.mkdir()
            got = run_once(n, shared, url, args, workdir)
            runs["shared" if shared else "independent"].append(got)
            out_say(
                f"pgchain: {n} replica(s), {got['chain']}: {got['appends_per_s']:,.0f} "
                f"appends/s, p99 {got['p99_ms']} ms, lock held {got['lock_hold_ms_p50']} ms, "
                f"{got['failed_appends']} timed out, verified {got['verified']}"
            )
    return pg_chain_figures.row(n, runs)


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    return "unknown"


def _load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def for_full_bench(out_say: Say) -> dict[str, Any] | None:
    """bench/run.py's `pgchain` group: one run per count, saved in bench/runs/; None without
    a PostgreSQL (said, not failed: the other groups need none)."""
    why = reachable(database_url())
    if why:
        out_say(f"pgchain: no PostgreSQL ({URL_ENV}): {why}; no pgchain figures in this run")
        return None
    result = run_all(parse(["--runs", "1", "--seconds", "4"]), out_say)
    saved = pg_chain_figures.save(result, None)
    print(pg_chain_figures.table(result))
    out_say(f"pgchain: wrote {saved}")
    return pg_chain_figures.summary_for_results(result, saved)


def add_to_results(path: Path, pgchain: dict[str, Any]) -> None:
    """Put the pgchain section into the results.json bench/run.py has just written."""
    data = json.loads(path.read_text())
    data["pgchain"] = pgchain
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=list(REPLICAS))
    parser.add_argument("--writers", type=int, default=WRITERS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--url", default="", help=f"PostgreSQL URL (default ${URL_ENV})")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/runs/)")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    sys.path.insert(0, str(REPO))
    # SIGTERM unwinds like Ctrl-C, so the fresh schemas are dropped and the replicas stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    why = reachable(args.url or database_url())
    if why:
        print(f"pg_chain: no PostgreSQL (--url or {URL_ENV}): {why}", file=sys.stderr)
        return 2
    result = run_all(args)
    saved = pg_chain_figures.save(result, args.out)
    print()
    print(pg_chain_figures.table(result))
    print()
    say(f"pgchain: wrote {saved}; every chain verified: {result['verified']}")
    return 0 if result["verified"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
