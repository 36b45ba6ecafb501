"""`footage-gateway retention enforce`: find footage past FOOTGW_RETENTION_DAYS, and delete it.

Footage past retention is never served (410 in the request flow); this purges it from storage,
each deletion an audit event, so what was deleted, and when, stays provable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TextIO

from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.db import create_db_engine
from gateway.errors import ConfigError, NotFound
from gateway.settings import Settings
from gateway.storage import open_storage
from gateway.storage.base import Storage
from gateway.types import CameraRef, ClipRef, EventType, clip_recorded_at

RETENTION_PRINCIPAL = "system:retention"


async def expired_clips(storage: Storage, cutoff: datetime) -> AsyncIterator[ClipRef]:
    """Every stored clip recorded before the cutoff."""
    for customer_id in await storage.list_customers():
        for camera_id in await storage.list_cameras(customer_id):
            camera = CameraRef(customer_id, camera_id)
            for item in await storage.list_clips(camera):
                recorded_at = clip_recorded_at(item.clip_id)
                if recorded_at is not None and recorded_at < cutoff:
                    yield ClipRef(customer_id, camera_id, item.clip_id, recorded_at)


async def enforce(
    settings: Settings, *, apply: bool, out: TextIO, now: datetime | None = None
) -> int:
    """List (and with apply, delete) footage past retention; prints one line per clip."""
    if settings.retention_days is None:
        raise ConfigError("FOOTGW_RETENTION_DAYS", "is not set, so nothing is past retention")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    storage = open_storage(settings)
    engine = create_db_engine(settings.database_url)
    audit = AuditLog(AuditStore(engine))
    count = 0
    try:
        async for clip in expired_clips(storage, cutoff):
            count += 1
            if apply and not await _purge(storage, audit, clip, settings.retention_days):
                continue
            print(("deleted " if apply else "expired ") + clip.key, file=out)
    finally:
        await audit.close()
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
