"""Builds playback's parts from the settings and the services they share (services.py)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.audit.log import AuditLog
from gateway.grants import GrantStore
from gateway.pipeline import FootageFlow
from gateway.playback.ending import Ender
from gateway.playback.flow import PlaybackFlow
from gateway.playback.held import HeldClips
from gateway.playback.liveness import Liveness
from gateway.playback.reaper import Reaper
from gateway.playback.recorder import PlayLog
from gateway.playback.store import SessionStore
from gateway.settings import Settings
from gateway.storage.beneath import HAS_OPENAT2
from gateway.storage.fs import FileStorage

MAX_SWEEP_SECONDS = 15.0  # requests end sessions at once; the sweep catches the silent ones


def build_playback(
    settings: Settings,
    engine: Engine,
    relaxed: Engine,
    flow: FootageFlow,
    audit: AuditLog,
    grants: GrantStore,
) -> PlaybackFlow:
    """The playback flow with its store, liveness cache, recorder, ender and reaper."""
    store = SessionStore(engine, relaxed)
    idle = settings.playback_idle_seconds
    liveness = Liveness(store, idle)
    playlog = PlayLog(store)
    ender = Ender(audit, store, playlog, liveness)
    playback = PlaybackFlow(
        flow=flow,
        store=store,
        grants=grants,
        liveness=liveness,
        playlog=playlog,
        ender=ender,
        idle_seconds=idle,
        max_seconds=settings.playback_max_seconds,
        relaxed=relaxed if relaxed is not engine else None,
    )
    if _holds_files(flow):
        playback.held = HeldClips(flow.storage)  # type: ignore[arg-type]
    interval = max(1.0, min(MAX_SWEEP_SECONDS, idle / 10))
    playback.reaper = Reaper(store, ender, idle, lambda: playback.clock(), interval)
    return playback


def _holds_files(flow: FootageFlow) -> bool:
    """Whether play requests may keep their clip open between requests: the file store where
    openat2 answers (its check needs it), serving the bytes itself (no redirect, no nginx)."""
    return (
        isinstance(flow.storage, FileStorage)
        and HAS_OPENAT2
        and flow.presigner is None
        and flow.accel_prefix is None
    )
