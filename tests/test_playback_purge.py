"""Request records of ended sessions are deleted an hour after the end (contract §12); the
session's sums stay, and no record of a live or recently ended session goes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.db import create_db_engine, playback_requests
from gateway.playback.reaper import KEEP_REQUESTS
from gateway.playback.store import PlayRecord, Session, SessionStore
from tests.test_playback_store import NOW
from tests.test_playback_store import standing as a_standing


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    migrations.migrate(engine)
    yield engine
    engine.dispose()


def session(name: str) -> Session:
    return replace(a_standing(grant_id=None).session, session_id=name, token_hash=name * 32)


def played(store: SessionStore, made: Session, requests: int) -> None:
    records = [
        PlayRecord(made.session_id, NOW, "GET", 206, i * 10, i * 10 + 9, 10)
        for i in range(requests)
    ]
    store.record(records)


def kept(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(playback_requests.c.session_id, sa.func.count()).group_by(
                playback_requests.c.session_id
            )
        ).all()
    return {sid: int(n) for sid, n in rows}


def test_only_the_records_of_sessions_ended_an_hour_ago_go(engine: Engine) -> None:
    store = SessionStore(engine, engine)
    old, recent, live = session("aa"), session("bb"), session("cc")
    for made in (old, recent, live):
        store.create(made)
        played(store, made, 5)
    with engine.begin() as conn:
        store.end(conn, old.session_id, "idle", NOW)
        store.end(conn, recent.session_id, "idle", NOW + KEEP_REQUESTS)

    assert store.purge_requests(NOW + KEEP_REQUESTS) == 5
    assert kept(engine) == {"bb": 5, "cc": 5}
    summed = store.get(old.session_id)
    assert summed.requests == 5 and summed.bytes_sent == 50  # the sums stay
    assert store.purge_requests(NOW + KEEP_REQUESTS) == 0


def test_a_sweep_deletes_at_most_a_batch(engine: Engine) -> None:
    store = SessionStore(engine, engine)
    old = session("aa")
    store.create(old)
    played(store, old, 25)
    with engine.begin() as conn:
        store.end(conn, old.session_id, "idle", NOW)
    later = NOW + timedelta(hours=2)
    assert store.purge_requests(later, limit=10) == 10
    assert store.purge_requests(later, limit=10) == 10
    assert store.purge_requests(later, limit=10) == 5
    assert kept(engine) == {}
