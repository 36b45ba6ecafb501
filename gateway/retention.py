"""`footage-gateway retention enforce`: find footage past FOOTGW_RETENTION_DAYS, and delete it.

Footage past retention is never served (410 in the request flow); this purges it from storage,
each deletion an audit event, so what was deleted, and when, stays provable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TextIO

from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.db import create_db_engine
from gateway.errors import ConfigError, NotFound
from gateway.settings import Settings
from gateway.storage import open_inventory, open_storage
from gateway.storage.base import Inventory, Storage
from gateway.storage.paths import clip_at
from gateway.types import ClipRef, EventType

RETENTION_PRINCIPAL = "system:retention"


async def expired_clips(inventory: Inventory, cutoff: datetime) -> AsyncIterator[ClipRef]:
    """Every stored clip recorded before the cutoff.

    Misnamed objects are passed by: they are no clip, and `footage-gateway storage check`
    names them (gateway.storage.paths reads a path the same way for both).
    """
    async with aclosing(inventory.walk()) as objects:  # type: ignore[type-var]
        async for found in objects:
            clip = clip_at(found)
            if clip is not None and clip.recorded_at < cutoff:
                yield clip


async def enforce(
    settings: Settings, *, apply: bool, out: TextIO, now: datetime | None = None
) -> int:
    """List (and with apply, delete) footage past retention; prints one line per clip."""
    if settings.retention_days is None:
        raise ConfigError("FOOTGW_RETENTION_DAYS", "is not set, so nothing is past retention")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    inventory = open_inventory(settings)  # what it walks
    storage = open_storage(settings)  # what it deletes with
    engine = create_db_engine(settings.database_url)
    audit = AuditLog(AuditStore(engine))
    count = 0
    try:
        async for clip in expired_clips(inventory, cutoff):
            count += 1
            if apply and not await _purge(storage, audit, clip, settings.retention_days):
                continue
            print(("deleted " if apply else "expired ") + clip.key, file=out)
    finally:
        await audit.close()
        await inventory.close()
        await storage.close()
        engine.dispose()
    print(
        f"{count} clip(s) past {settings.retention_days} days"
        + ("" if apply else " (list only; --apply deletes)"),
        file=out,
    )
    return 0


async def _purge(storage: Storage, audit: AuditLog, clip: ClipRef, days: int) -> bool:
    # Record first, then delete: a crash between the two leaves a recorded clip that the next
    # run lists and deletes again (two events), never a deletion that no event records.
    await audit.append(
        new_event(
            EventType.FOOTAGE_DELETED,
            principal=RETENTION_PRINCIPAL,
            action="retention.purge",
            customer_id=clip.customer_id,
            camera_id=clip.camera_id,
            clip_id=clip.clip_id,
            reason="retention_expired",
            detail={"retention_days": days},
        )
    )
    try:
        await storage.delete(clip)
    except NotFound:
        return False
    return True
