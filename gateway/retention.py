"""`footage-gateway retention enforce`: find footage past FOOTGW_RETENTION_DAYS, and delete it.

Footage past retention is never served (410 in the request flow); this purges it from storage,
every stored version of it (docs/contract.md §4), each deletion an audit event listing what was
removed, so what was deleted, and when, stays provable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TextIO

from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.db import create_db_engine
from gateway.errors import ConfigError, DeletionBlocked, NotFound
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
    """List (and with apply, delete) footage past retention; prints one line per clip.

    Exit status 1 when an object lock or legal hold kept any clip: a scheduled run must notice.
    """
    if settings.retention_days is None:
        raise ConfigError("FOOTGW_RETENTION_DAYS", "is not set, so nothing is past retention")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    inventory = open_inventory(settings)  # what it walks
    storage = open_storage(settings)  # what it deletes with
    engine = create_db_engine(settings.database_url)
    audit = AuditLog(AuditStore(engine))
    count = blocked = 0
    try:
        async for clip in expired_clips(inventory, cutoff):
            count += 1
            outcome = (
                await _purge(storage, audit, clip, settings.retention_days) if apply else "expired"
            )
            if outcome == "blocked":
                blocked += 1
                print(f"blocked {clip.key}: an object lock or legal hold keeps it", file=out)
            elif outcome != "gone":
                print(f"{outcome} {clip.key}", file=out)
    finally:
        await audit.close()
        await inventory.close()
        await storage.close()
        engine.dispose()
    print(
        f"{count} clip(s) past {settings.retention_days} days"
        + ("" if apply else " (list only; --apply deletes)")
        + (f"; {blocked} kept by an object lock or legal hold" if blocked else ""),
        file=out,
    )
    return 1 if blocked else 0


async def _purge(storage: Storage, audit: AuditLog, clip: ClipRef, days: int) -> str:
    """Delete every version of one clip; what became of it: "deleted", "blocked" or "gone".

    The same order as an owner's deletion (docs/contract.md §7 "The chain"): storage is not
    transactional, so `footage.delete_requested` is written first (if it cannot be, nothing is
    deleted and the run stops), `footage.deleted` only once storage says every version is gone,
    and `footage.delete_failed` when it is refused. A crash in between leaves a request event
    with no outcome, and the clip, if still there, is listed again by the next run.
    """
    requested = await audit.append(_event(EventType.FOOTAGE_DELETE_REQUESTED, clip, days))
    joined = {"requested_event_id": requested["event_id"]}
    try:
        deletion = await storage.plan_deletion(clip)
        await storage.delete(deletion)
    except (NotFound, DeletionBlocked) as refused:
        # Gone meanwhile, or an object lock or legal hold keeps it (docs/contract.md §4).
        blocked = refused.as_detail() if isinstance(refused, DeletionBlocked) else {}
        await audit.append(
            _event(EventType.FOOTAGE_DELETE_FAILED, clip, days, refused.code, **joined, **blocked)
        )
        return "blocked" if blocked else "gone"
    await audit.append(
        _event(EventType.FOOTAGE_DELETED, clip, days, **joined, removed=deletion.as_detail())
    )
    return "deleted"


def _event(
    event_type: EventType,
    clip: ClipRef,
    days: int,
    reason: str = "retention_expired",
    **detail: object,
) -> Event:
    return new_event(
        event_type,
        principal=RETENTION_PRINCIPAL,
        action="retention.purge",
        customer_id=clip.customer_id,
        camera_id=clip.camera_id,
        clip_id=clip.clip_id,
        reason=reason,
        detail={"retention_days": days, **detail},
    )
