"""A process that appends to the audit log and says on stdout each append it was answered for.

    python -m tests.support.audit_writer DB_PATH WRITERS [STOP_AFTER]

WRITERS asyncio tasks append to the SQLite audit log at DB_PATH (migrated here) through
AuditLog, as requests do, until killed (or until STOP_AFTER appends were answered). Right after
each `await append(...)` returns, the line `ack <seq> <event_id>` goes straight to fd 1, with no
buffering: once a line is out, the append was acknowledged (tests/test_audit_durability.py).
"""

from __future__ import annotations

import asyncio
import os
import sys

from gateway import migrations
from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.db import create_db_engine
from gateway.logging_setup import configure_logging
from gateway.types import EventType


async def main(path: str, writers: int, stop_after: int | None) -> None:
    engine = create_db_engine(f"sqlite:///{path}")
    migrations.migrate(engine)
    log = AuditLog(AuditStore(engine))
    answered = 0
    done = asyncio.Event()

    async def writer(w: int) -> None:
        nonlocal answered
        i = 0
        while not done.is_set():
            event = new_event(EventType.ACCESS_DECISION, request_id=f"w{w}r{i}")
            sealed = await log.append(event)
            os.write(1, f"ack {sealed['seq']} {sealed['event_id']}\n".encode())
            answered, i = answered + 1, i + 1
            if stop_after is not None and answered >= stop_after:
                done.set()

    await asyncio.gather(*(writer(w) for w in range(writers)))
    await log.close()


if __name__ == "__main__":
    configure_logging("json")  # the audit lines go to stderr; stdout carries only the acks
    stop = int(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), stop))
