"""Any hour: evidence for a flag that is already open costs no write per further event.

A support agent at night: every request is `off_hours` evidence. The statements the detector
sends to the `flags` table are counted with a SQLAlchemy cursor listener (the real SQL, on a
real SQLite database): N events make one flag with a bounded number of writes, not N, and the
flag's evidence count is still exactly N once held evidence is flushed, and after shutdown.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.db import create_db_engine
from gateway.detection.evidence import FLUSH_SECONDS, MAX_PENDING
from gateway.detection.flags import MAX_EVIDENCE, FlagStore
from tests.test_detection_rules import Harness, only

NIGHT = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)  # a Wednesday, after the 20:00 end of day
EVENTS = 1000


def count_flag_writes(engine: sa.engine.Engine) -> list[str]:
    """Every INSERT or UPDATE on `flags` the engine sends from now on."""
    writes: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        head = statement.lstrip().upper()
        if head.startswith(("INSERT INTO FLAGS", "UPDATE FLAGS")):
            writes.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    return writes


def test_an_open_off_hours_flag_takes_n_events_in_a_bounded_number_of_writes(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, only("off_hours"))
    writes = count_flag_writes(h.engine)
    began = time.monotonic()
    ids = [h.access(at=NIGHT + timedelta(seconds=i))["event_id"] for i in range(EVENTS)]
    elapsed = time.monotonic() - began
    # One INSERT raises the flag; then one UPDATE per MAX_PENDING events, or per timer turn.
    bound = 1 + math.ceil(EVENTS / MAX_PENDING) + math.ceil(elapsed / FLUSH_SECONDS) + 1
    assert len(writes) <= bound, (len(writes), bound)
    assert len(writes) < EVENTS / 20  # one write per event would be EVENTS
    [flag] = h.flags("off_hours")  # reading flags writes what is held first
    assert flag.detail["events"] == EVENTS
    assert flag.event_ids == ids[-MAX_EVIDENCE:]
    h.close()


def test_held_evidence_is_written_on_shutdown(tmp_path: Path) -> None:
    h = Harness(tmp_path, only("off_hours"))
    writes = count_flag_writes(h.engine)
    ids = [h.access(at=NIGHT + timedelta(seconds=i))["event_id"] for i in range(20)]
    assert h.detector.evidence.pending()  # 19 events held, none written yet
    assert [w.split()[0].upper() for w in writes] == ["INSERT"]
    database_url = str(h.engine.url)
    h.close()  # the detector's close flushes before the process would end
    engine = create_db_engine(database_url)
    try:
        [flag] = FlagStore(engine).search()
    finally:
        engine.dispose()
    assert flag.detail["events"] == 20 and flag.event_ids == ids


def test_evidence_for_a_flag_closed_meanwhile_raises_a_new_flag(tmp_path: Path) -> None:
    """Negative: held evidence never lands on a flag another worker resolved."""
    h = Harness(tmp_path, only("off_hours"))
    first = h.access(at=NIGHT)
    [flag] = h.flags("off_hours")
    later = [h.access(at=NIGHT + timedelta(minutes=i))["event_id"] for i in range(1, 4)]
    # Resolved straight in the database, as another worker would, while 3 events are held.
    h.detector.flags.resolve(flag.flag_id, "ok", "ana", NIGHT)
    open_flags = h.flags("off_hours", status="open")
    [resolved] = h.flags("off_hours", status="resolved")
    assert resolved.event_ids == [first["event_id"]]
    assert [f.event_ids for f in open_flags] == [later]
    h.close()
