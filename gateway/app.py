"""create_app(settings): the Starlette app, its routes, and the services its lifespan builds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import migrations
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.authn import Authenticator
from gateway.authz import Authorizer, PolicyEngine
from gateway.cameras import CameraStore
from gateway.cluster import start_cluster
from gateway.db import create_db_engine
from gateway.detection.wiring import attach_detection, close_detection
from gateway.facts import FactsReader
from gateway.grants import GrantChecker, GrantStore
from gateway.metrics import Metrics
from gateway.middleware import RequestContextMiddleware, error_handlers
from gateway.pipeline import FootageFlow, Observer
from gateway.principals import PrincipalStore
from gateway.settings import Settings
from gateway.storage import open_storage, presigner_of
from gateway.storage.base import Storage
from gateway.types import DeliveryMode

log = structlog.get_logger("gateway.app")


@dataclass
class Services:
    """Every long-lived client of one gateway process; reached through app.state.services."""

    settings: Settings
    engine: Engine
    storage: Storage
    policy: PolicyEngine
    audit_store: AuditStore
    audit: AuditLog
    grants: GrantStore
    cameras: CameraStore
    principals: PrincipalStore
    flow: FootageFlow
    metrics: Metrics
    observers: list[Observer] = field(default_factory=list)
    checkpoints: Any = None  # audit checkpoints (signed heads), when configured
    detector: Any = None  # detection rules, flags and suspensions
    cluster: Any = None  # policy hot reload and the Redis bus to other replicas (gateway.cluster)


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Build the clients; the database must already be migrated (serve checks, migrate applies)."""
    engine = engine or create_db_engine(settings.database_url)
    migrations.check(engine)
    storage = open_storage(settings)
    policy = PolicyEngine(settings.policy_dir)
    audit_store = AuditStore(engine)
    audit = AuditLog(audit_store)
    grants = GrantStore(engine)
    cameras = CameraStore(engine)
    principals = PrincipalStore(engine)
    metrics = Metrics()
    observers: list[Observer] = []
    flow = FootageFlow(
        authn=Authenticator.from_settings(settings),
        principals=principals,
        cameras=cameras,
        authorizer=Authorizer(policy, GrantChecker(grants)),
        grants=grants,
        audit=audit,
        storage=storage,
        facts=FactsReader.for_engine(engine, principals, cameras, grants),
        retention_days=settings.retention_days,
        metrics=metrics,
        presigner=presigner_of(storage) if settings.delivery == DeliveryMode.REDIRECT else None,
        accel_prefix=settings.accel_prefix if settings.delivery == DeliveryMode.ACCEL else None,
        observers=observers,
    )
    services = Services(
        settings,
        engine,
        storage,
        policy,
        audit_store,
        audit,
        grants,
        cameras,
        principals,
        flow,
        metrics,
        observers,
    )
    attach_detection(services)  # detection rules as an observer; signed audit checkpoints
    return services


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """The ASGI app. Services are built in the lifespan, never at import time (STYLE §7)."""
    from gateway.api import routes  # the API modules import Services from here

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = build_services(settings, engine)
        app.state.services = services
        services.cluster = await start_cluster(services)
        log.info(
            "gateway_started",
            storage=settings.storage,
            delivery=settings.delivery,
            policy_rules=services.policy.rule_count,
        )
        try:
            yield
        finally:
            await services.cluster.close()
            await services.audit.close()
            services.audit_store.close()  # the connection PostgreSQL appends hold
            await close_detection(services)  # pending alerts, then the last checkpoint
            await services.storage.close()
            services.flow.facts.close()  # before dispose: it holds one pooled connection
            if engine is None:
                services.engine.dispose()
            log.info("gateway_stopped")

    middleware = [Middleware(RequestContextMiddleware)]
    if settings.trusted_proxies:  # X-Forwarded-For only from proxies we were told to trust
        middleware.insert(
            0, Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    route_list: list[BaseRoute] = routes()
    return Starlette(
        routes=route_list,
        middleware=middleware,
        exception_handlers=error_handlers(),
        lifespan=lifespan,
    )
