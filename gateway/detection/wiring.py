"""Build one gateway process's detector from its settings and the few stores it uses."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.cluster.identity import read_cluster_id
from gateway.detection.alerts import AlertSender
from gateway.detection.config import load_detection_config
from gateway.detection.counters import CounterStore, MemoryCounters
from gateway.detection.detector import Detector
from gateway.detection.flags import FlagStore
from gateway.metrics import Metrics
from gateway.principals import PrincipalStore
from gateway.settings import Settings


def counter_store(settings: Settings) -> CounterStore:
    """Redis when FOOTGW_REDIS_URL is set (counts across replicas); else, for several worker
    processes, a SQLite file they share (counts across this machine's workers); else this
    process's memory."""
    if settings.redis_url:
        from gateway.detection.redis_counters import RedisCounters

        return RedisCounters.from_url(settings.redis_url)
    if settings.workers is not None and settings.workers > 1:
        from gateway.detection.sqlite_counters import FILE_NAME, SqliteCounters

        return SqliteCounters(settings.data_dir / FILE_NAME)
    return MemoryCounters()


def build_detector(
    settings: Settings,
    engine: Engine,
    principals: PrincipalStore,
    audit: AuditLog,
    audit_store: AuditStore,
    metrics: Metrics,
) -> Detector:
    """A detector over these stores (a bad detection.toml raises ConfigError)."""
    config = load_detection_config(settings.policy_dir)
    return Detector(
        config=config,
        counters=counter_store(settings),
        flags=FlagStore(engine),
        principals=principals,
        audit=audit,
        audit_store=audit_store,
        alerts=AlertSender(settings.alert_webhook, engine),
        metrics=metrics,
        deployment_id=lambda: read_cluster_id(engine),
    )
