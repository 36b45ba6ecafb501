"""Offline audit tools for the CLI: verify the chain, export it as JSON lines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from gateway import migrations
from gateway.audit.store import AuditStore
from gateway.audit.verify import VerifyResult, verify_rows
from gateway.db import create_db_engine
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.audit.checkpoints import SignedCheckpoint


def latest_checkpoint(settings: Settings, store: AuditStore) -> SignedCheckpoint | None:
    """The newest checkpoint whose signature verifies (None until checkpoints exist)."""
    try:
        from gateway.audit.checkpoints import Checkpointer
    except ImportError:
        return None
    checkpoint: SignedCheckpoint | None = Checkpointer.from_settings(
        settings, store.engine
    ).latest_verified()
    return checkpoint


def verify_log(settings: Settings) -> tuple[VerifyResult, SignedCheckpoint | None]:
    """Walk the whole chain, against the last signed checkpoint when there is one (returned)."""
    store = AuditStore(create_db_engine(settings.database_url))
    try:
        # An unmigrated database is a SchemaError (one line, exit 2), never "not intact" (1).
        migrations.check(store.engine)
        checkpoint = latest_checkpoint(settings, store)
        return verify_rows(store.iter_rows(), checkpoint), checkpoint
    finally:
        store.engine.dispose()


def export_log(settings: Settings, out: TextIO) -> int:
    """Stream every event as one JSON line (for a SIEM); returns how many."""
    store = AuditStore(create_db_engine(settings.database_url))
    count = 0
    try:
        migrations.check(store.engine)
        for event in store.iter_events():
            out.write(json.dumps(event, sort_keys=True) + "\n")
            count += 1
    finally:
        store.engine.dispose()
    return count
