"""The one routine that writes demo cameras and clips, for the walk-through and the scenarios."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway import migrations
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.settings import Settings
from gateway.storage import open_seeder
from gateway.types import CameraRef, ClipRef, Zone, clip_recorded_at


@dataclass(frozen=True, slots=True)
class DemoCamera:
    customer_id: str
    camera_id: str
    zone: Zone
    label: str


def clip_bytes(key: str, size: int) -> bytes:
    """Deterministic filler behind an MP4 `ftyp` box: bytes that look like a file."""
    header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    block = hashlib.sha256(key.encode()).digest() * 2048  # 64 KiB
    body = (block * (size // len(block) + 1))[: size - len(header)]
    return header + body


async def seed(
    settings: Settings,
    cameras: Sequence[DemoCamera],
    clip_ids: Sequence[str],
    clip_size: int,
    now: datetime,
) -> None:
    """Migrate, then give every camera its zone and every clip id on every camera; idempotent."""
    engine = create_db_engine(settings.database_url)
    migrations.migrate(engine)
    store = CameraStore(engine)
    storage = open_seeder(settings)
    try:
        for cam in cameras:
            store.set(CameraRef(cam.customer_id, cam.camera_id), cam.zone, cam.label, "demo", now)
            for clip_id in clip_ids:
                recorded_at = clip_recorded_at(clip_id) or now
                clip = ClipRef(cam.customer_id, cam.camera_id, clip_id, recorded_at)
                await storage.put(clip, clip_bytes(clip.key, clip_size))
    finally:
        await storage.close()
        engine.dispose()
