"""The hash-chained audit log: appends, group commit, and tamper detection by verify."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import migrations
from gateway.audit.chain import GENESIS_HASH
from gateway.audit.events import chain_hash, new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore, EventQuery
from gateway.audit.verify import INDEXED, Checkpoint, verify_rows
from gateway.db import audit_events, create_db_engine
from gateway.errors import AuditUnavailable
from gateway.types import EventType


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrations.migrate(engine)
    return AuditStore(engine)


def fill(store: AuditStore, n: int) -> list[dict]:
    events = [
        new_event(
            EventType.ACCESS_DECISION,
            principal=f"p{i % 3}",
            customer_id=f"c{i % 2}",
            decision="allow" if i % 2 else "deny",
            request_id=f"r{i}",
        )
        for i in range(n)
    ]
    return store.append_batch(events)


def verify(store: AuditStore, checkpoint: Checkpoint | None = None):
    return verify_rows(store.iter_rows(), checkpoint)


def test_chain_links_every_event_to_the_one_before(store):
    sealed = fill(store, 5)
    assert [e["seq"] for e in sealed] == [1, 2, 3, 4, 5]
    assert sealed[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(sealed):
        assert after["prev_hash"] == before["hash"]
    body = {k: v for k, v in sealed[2].items() if k != "hash"}
    assert sealed[2]["hash"] == chain_hash(sealed[1]["hash"], body)
    result = verify(store)
    assert result.ok and result.events == 5 and result.head == sealed[-1]["hash"]


def test_batches_continue_the_same_chain(store):
    fill(store, 3)
    more = fill(store, 2)
    assert [e["seq"] for e in more] == [4, 5]
    assert verify(store).ok


def _update(store: AuditStore, seq: int, **values) -> None:
    with store.engine.begin() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(**values))


def test_changing_a_field_in_the_body_is_caught_at_its_seq(store):
    fill(store, 6)
    row = next(r for r in store.iter_rows() if r["seq"] == 4)
    body = json.loads(row["body"])
    body["decision"] = "allow" if body["decision"] == "deny" else "deny"
    _update(
        store,
        4,
        body=json.dumps(body, sort_keys=True, separators=(",", ":")),
        decision=body["decision"],
    )
    result = verify(store)
    assert not result.ok and result.first_bad_seq == 4


def test_changing_only_an_indexed_column_is_caught(store):
    fill(store, 4)
    _update(store, 2, principal="someone-else")
    result = verify(store)
    assert not result.ok and result.first_bad_seq == 2


def test_recomputing_one_hash_breaks_the_next_link(store):
    fill(store, 5)
    _update(store, 3, hash="f" * 64)
    result = verify(store)
    assert not result.ok and result.first_bad_seq == 3


def test_deleting_a_row_is_caught_at_the_missing_seq(store):
    fill(store, 6)
    with store.engine.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 3))
    result = verify(store)
    assert not result.ok and result.first_bad_seq == 3


def test_swapping_two_rows_is_caught(store):
    fill(store, 6)
    rows = {r["seq"]: r for r in store.iter_rows()}
    cols = (*INDEXED, "body", "prev_hash", "hash")
    with store.engine.begin() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == 4).values(event_id="tmp"))
        for a, b in ((3, 4), (4, 3)):
            conn.execute(
                audit_events.update()
                .where(audit_events.c.seq == a)
                .values(**{c: rows[b][c] for c in cols})
            )
    result = verify(store)
    assert not result.ok and result.first_bad_seq == 3


def test_cut_tail_is_caught_only_with_a_checkpoint(store):
    sealed = fill(store, 8)
    checkpoint = Checkpoint(seq=8, head_hash=sealed[-1]["hash"])
    with store.engine.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq > 6))
    assert verify(store).ok  # a shorter chain is still a chain...
    result = verify(store, checkpoint)  # ...but not the one that was signed
    assert not result.ok and result.first_bad_seq == 7


def test_query_filters_and_pages(store):
    fill(store, 10)
    page = store.query(EventQuery(principal="p1", limit=2))
    assert [e["seq"] for e in page] == [2, 5]
    rest = store.query(EventQuery(principal="p1", after_seq=5, limit=10))
    assert [e["seq"] for e in rest] == [8]
    denies = store.query(EventQuery(decision="deny", customer_id="c0"))
    assert all(e["decision"] == "deny" and e["customer_id"] == "c0" for e in denies)
    newest = store.query(EventQuery(newest_first=True, limit=1))
    assert newest[0]["seq"] == 10


def test_group_commit_keeps_one_dense_chain_under_concurrency(store):
    async def main() -> list[dict]:
        log = AuditLog(store)
        try:
            return await asyncio.gather(
                *(
                    log.append(new_event(EventType.ACCESS_DECISION, request_id=f"r{i}"))
                    for i in range(200)
                )
            )
        finally:
            await log.close()

    sealed = asyncio.run(main())
    assert sorted(e["seq"] for e in sealed) == list(range(1, 201))
    assert verify(store).ok


def test_a_failing_store_fails_every_waiting_append(store):
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE audit_events"))

    async def main() -> None:
        log = AuditLog(store)
        try:
            with pytest.raises(AuditUnavailable):
                await log.append(new_event(EventType.ACCESS_DECISION))
        finally:
            await log.close()

    asyncio.run(main())
