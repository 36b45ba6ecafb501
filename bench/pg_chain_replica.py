"""One replica of bench/pg_chain.py: the gateway's audit writer in a process of its own.

    python bench/pg_chain_replica.py REPLICA WRITERS SECONDS [LOCK_KEY]

Built as `serve` builds it (AuditLog's group commit → AuditStore → PgAppender, the
Checkpointer on its commit hook, every event a structured log line on stderr) from the
FOOTGW_* environment the parent gives it. It appends a warm-up, prints `ready`, waits for `go`
on stdin, then WRITERS concurrent tasks each await `AuditLog.append` in a loop for SECONDS (the
wait a footage request makes before its first byte); its result is one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

WARMUP_EVENTS = 64


def _event(i: int, replica: int, writer: int) -> dict[str, Any]:
    """A staff view's access.decision, shaped as the gateway writes one (bench/micro.py too)."""
    from gateway.audit.events import new_event
    from gateway.types import EventType

    return new_event(
        EventType.ACCESS_DECISION,
        request_id=uuid.uuid4().hex,
        principal=f"agent-{replica}-{writer}@support.example",
        roles=["support_agent"],
        purpose="customer_support",
        justification=f"T-{10_000 + writer} customer asked about the evening of the 28th",
        action="view",
        customer_id=f"cust-{(i * 7919 + writer) % 1_000_000:07d}",
        camera_id="cam-front-door",
        clip_id="20261128T101500Z.mp4",
        decision="allow",
        reason="grant",
        grant_id=f"gr_{uuid.uuid4().hex[:20]}",
        status=206,
        range="bytes=0-65535",
        client_ip="10.1.2.3",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) support-console/1.0",
        detail={
            "rule": "support_agent, customer_support, view, indoor, allow, grant",
            "zone": "indoor",
            "method": "GET",
        },
    )


async def _replica(replica: int, writers: int, seconds: float) -> dict[str, Any]:
    """Build the audit path as `serve` does, warm it, wait for `go`, append for `seconds`."""
    from gateway.audit.checkpoints import Checkpointer
    from gateway.audit.log import AuditLog
    from gateway.audit.store import AuditStore
    from gateway.db import create_db_engine
    from gateway.errors import AuditUnavailable
    from gateway.settings import load_settings

    settings = load_settings()
    engine = create_db_engine(settings.database_url)
    store = AuditStore(engine)
    audit = AuditLog(store)
    checkpoints = Checkpointer.from_settings(settings, engine)
    audit.on_commit(checkpoints.on_commit)
    try:
        for i in range(WARMUP_EVENTS):
            # A starved machine may time one out (AuditUnavailable, a 503): warming, not measuring.
            with contextlib.suppress(AuditUnavailable):
                await audit.append(_event(i, replica, 0))
        print("ready", flush=True)
        go = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if go.strip() != "go":
            raise SystemExit("no go")
        assert store.pg is not None, "the bench needs PostgreSQL"
        fast0, locked0, collisions0 = (
            store.pg.fast_commits,
            store.pg.locked_commits,
            store.pg.collisions,
        )
        latencies: list[float] = []
        holds = _time_lock_holds(store.pg)
        began = time.perf_counter()
        end = began + seconds

        failed = [0]

        async def writer(w: int) -> None:
            i = 0
            while time.perf_counter() < end:
                t = time.perf_counter()
                try:
                    await audit.append(_event(i, replica, w))
                except AuditUnavailable:
                    failed[0] += 1  # past the append timeout: that request would get a 503
                    continue
                finally:
                    i += 1
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - began
        return {
            "appends": len(latencies),
            "seconds": elapsed,
            "failed": failed[0],
            "latencies_ms": [round(x * 1000, 3) for x in latencies],
            "fast_commits": store.pg.fast_commits - fast0,
            "locked_commits": store.pg.locked_commits - locked0,
            "collisions": store.pg.collisions - collisions0,
            "lock_holds_ms": [round(x * 1000, 3) for x in holds],
        }
    finally:
        await audit.close()
        await checkpoints.close()
        store.close()
        engine.dispose()


def _time_lock_holds(pg: Any) -> list[float]:
    """Time, on the locked path, from the head read under the chain lock to COMMIT's return.

    That is how long this replica holds the fleet's one lock per commit (less the half round
    trip the head's reply takes to arrive): sealing the batch in Python, the INSERTs and the
    COMMIT's WAL flush. The methods are the appender's own, wrapped on this instance only.
    """
    holds: list[float] = []
    read_head, insert_and_commit = pg._locked_head, pg._insert_and_commit
    locked_at = [0.0]

    def timed_head(conn: Any) -> Any:
        head = read_head(conn)
        locked_at[0] = time.perf_counter()
        return head

    def timed_commit(conn: Any, sealed: Any, bodies: Any) -> None:
        insert_and_commit(conn, sealed, bodies)
        holds.append(time.perf_counter() - locked_at[0])

    pg._locked_head, pg._insert_and_commit = timed_head, timed_commit
    return holds


def child_main(replica: int, writers: int, seconds: float, lock_key: int | None) -> None:
    """Run one replica; its result is the last line on stdout."""
    from gateway.logging_setup import configure_logging

    if lock_key is not None:
        # An independent chain (the baseline): its own advisory lock key, as a shard would
        # have; the shared-chain runs leave the gateway's own key alone.
        import gateway.audit.pg_append as pg_append

        pg_append.AUDIT_LOCK_KEY = lock_key  # type: ignore[attr-defined]
    configure_logging("json")  # stderr: a file, as the parent started us
    try:
        import uvloop  # what uvicorn picks under `footage-gateway serve`

        result = uvloop.run(_replica(replica, writers, seconds))
    except ImportError:
        result = asyncio.run(_replica(replica, writers, seconds))
    # The result (with every latency) goes to a file and only "done" down the pipe: a line of
    # several pipe-buffers' length came back cut at 64 KiB in a full bench run.
    out = Path(os.environ["FOOTGW_DATA_DIR"]) / f"result-{replica}.json"
    out.write_text(json.dumps(result))
    print("done", flush=True)


if __name__ == "__main__":
    replica, writers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    child_main(replica, writers, seconds, int(sys.argv[4]) if len(sys.argv) > 4 else None)
