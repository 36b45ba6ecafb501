"""Wire detection and audit checkpoints into one gateway process's services, and close them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.audit.checkpoints import Checkpointer
from gateway.detection.alerts import AlertSender
from gateway.detection.config import load_detection_config
from gateway.detection.counters import CounterStore, MemoryCounters
from gateway.detection.detector import Detector
from gateway.detection.flags import FlagStore
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.app import Services


def counter_store(settings: Settings) -> CounterStore:
    """Redis when FOOTGW_REDIS_URL is set (counts across replicas), else this process."""
    if settings.redis_url:
        from gateway.detection.redis_counters import RedisCounters

        return RedisCounters.from_url(settings.redis_url)
    return MemoryCounters()


def build_detector(services: Services) -> Detector:
    """A detector over these services' stores (a bad detection.toml raises ConfigError)."""
    settings = services.settings
    config = load_detection_config(settings.policy_dir)
    return Detector(
        config=config,
        counters=counter_store(settings),
        flags=FlagStore(services.engine),
        principals=services.principals,
        audit=services.audit,
        audit_store=services.audit_store,
        alerts=AlertSender(settings.alert_webhook, config.alerts),
        metrics=services.metrics,
    )


def attach_detection(services: Services) -> None:
    """Observe every access decision, and checkpoint the audit chain as it grows."""
    detector = build_detector(services)
    services.detector = detector
    services.observers.append(detector)
    checkpoints = Checkpointer.from_settings(services.settings, services.engine)
    services.checkpoints = checkpoints
    services.audit.on_commit(checkpoints.on_commit)


async def close_detection(services: Services) -> None:
    """After the audit log is closed: send pending alerts, write the last checkpoint."""
    if services.detector is not None:
        await services.detector.close()
    if services.checkpoints is not None:
        await services.checkpoints.close()
