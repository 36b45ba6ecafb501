"""The one routine that writes demo cameras and clips, for the walk-through and the scenarios."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

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


# Every demo clip is this real H.264 MP4, so what `make run` serves plays in any browser and
# player without ffmpeg at run time. Ten seconds of ffmpeg's test pattern, made once with:
#   ffmpeg -f lavfi -i testsrc=size=320x180:rate=15 -t 10 -c:v libx264 -pix_fmt yuv420p
#     -profile:v baseline -level 3.0 -crf 30 -g 15 -movflags +faststart
#     -map_metadata -1 -fflags +bitexact -flags:v +bitexact test-pattern.mp4
# Baseline profile and yuv420p decode everywhere; a keyframe a second makes seeks land fast;
# +faststart puts the index (moov) first, so a player starts from the first ranged read.
TEST_PATTERN = Path(__file__).parent / "media" / "test-pattern.mp4"


@cache
def clip_bytes() -> bytes:
    """The demo clip: the committed test pattern (package data)."""
    return TEST_PATTERN.read_bytes()


async def seed(
    settings: Settings,
    cameras: Sequence[DemoCamera],
    clip_ids: Sequence[str],
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
                await storage.put(clip, clip_bytes())
    finally:
        await storage.close()
        engine.dispose()
