"""Services: the frozen, typed record of every long-lived client of one gateway process.

Built once by `build_services` in the app's lifespan and handed to requests through
Starlette's lifespan state (`request.state.services`, STYLE §15). Each subsystem is given the
few clients it uses as arguments, never this record; nothing is attached to it afterwards.
What must start on the running loop (the cluster's watcher and bus) starts in `start()`.

This module sits just under `app`: it imports the subsystems and nothing from `app` or `api`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from gateway import migrations
from gateway.access_requests.reviews import Reviews, ReviewStore
from gateway.access_requests.service import AccessRequests
from gateway.access_requests.store import AccessRequestStore
from gateway.access_requests.sweeper import Sweeper
from gateway.audit.checkpoints import Checkpointer
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.authn import Authenticator
from gateway.authz import Authorizer, PolicyEngine
from gateway.cameras import CameraStore
from gateway.cluster import Cluster
from gateway.db import create_db_engine, create_relaxed_engine, notifications
from gateway.detection.detector import Detector
from gateway.detection.wiring import build_detector
from gateway.facts import FactsReader
from gateway.grants import GrantStore, covering_grant
from gateway.metrics import Metrics
from gateway.notify.outbox import Destination, OutboxStore
from gateway.notify.requests import notify_transition
from gateway.notify.signing import Signer
from gateway.notify.triggers import ViewNotices
from gateway.notify.worker import Deliverer, Route
from gateway.outcomes import Recorder
from gateway.pipeline import FootageFlow
from gateway.playback.flow import PlaybackFlow
from gateway.playback.wiring import build_playback
from gateway.principals import PrincipalStore
from gateway.ratelimit import AttemptLimiter
from gateway.settings import Settings
from gateway.signin.client import OidcClient
from gateway.signin.discovery import Discovery
from gateway.signin.flow import SignIn
from gateway.signin.store import SignInStore
from gateway.storage import open_storage, presigner_of
from gateway.storage.base import Storage
from gateway.types import DeliveryMode


@dataclass(frozen=True, slots=True)
class Services:
    """Every long-lived client of one gateway process; requests read request.state.services."""

    settings: Settings
    engine: Engine
    storage: Storage
    policy: PolicyEngine
    audit_store: AuditStore
    audit: AuditLog
    grants: GrantStore
    cameras: CameraStore
    principals: PrincipalStore
    facts: FactsReader
    flow: FootageFlow
    metrics: Metrics
    detector: Detector  # detection rules, flags and suspensions: the flow's observer
    checkpoints: Checkpointer  # signed heads of the audit chain, on every commit hook
    cluster: Cluster  # policy hot reload and the Redis bus to other replicas
    access_requests: AccessRequests  # staff ask, the customer or staff approvers answer
    reviews: Reviews  # break-glass reviews, opened by the flow's observer
    sweeper: Sweeper  # expires requests and flags overdue reviews, periodically
    playback: PlaybackFlow  # playback sessions (contract §12): their flow, recorder and reaper
    outbox: OutboxStore  # notifications and alerts waiting to be posted (contract §14)
    deliverer: Deliverer  # posts them, signed, from the background
    owns_engine: bool  # built here from settings (so disposed here), not handed in
    signin: SignIn | None = None  # sign-in through the identity provider (contract §15)

    async def start(self) -> None:
        """Start what runs on the loop: the policy watcher and the Redis bus (if configured)."""
        await self.cluster.start()
        self.sweeper.start()
        self.playback.run_reaper()
        await self.deliverer.start()

    async def close(self) -> None:
        """Stop everything in an order that loses nothing: each step flushes into the next."""
        await self.cluster.close()
        await self.sweeper.close()
        await self.playback.close()  # its last requests, and ends, before the audit log closes
        await self.deliverer.close()  # settles what it posted while the audit log still writes
        await self.audit.close()
        self.audit_store.close()  # the connection PostgreSQL appends hold
        await self.detector.close()  # pending alerts, once the audit log is closed
        await self.checkpoints.close()  # then the last checkpoint covers every commit
        await self.storage.close()
        self.facts.close()  # before dispose: it holds one pooled connection
        if self.owns_engine:
            self.engine.dispose()


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Build the clients; the database must already be migrated (serve checks, migrate applies)."""
    owns_engine = engine is None
    engine = engine or create_db_engine(settings.database_url)
    migrations.check(engine)
    storage = open_storage(settings)
    policy = PolicyEngine(settings.policy_dir)
    audit_store = AuditStore(engine)
    audit = AuditLog(audit_store)
    grants = GrantStore(engine)
    cameras = CameraStore(engine)
    principals = PrincipalStore(engine)
    facts = FactsReader.for_engine(engine, principals, cameras, grants)
    metrics = Metrics()
    detector = build_detector(settings, engine, principals, audit, audit_store, metrics)
    checkpoints = Checkpointer.from_settings(settings, engine)
    access_requests = AccessRequests(AccessRequestStore(engine), grants, audit)
    access_requests.on_transition(notify_transition)  # the customer hears of each (§14)
    reviews = Reviews(
        ReviewStore(engine),
        audit,
        review_within=lambda: policy.approvals.review_within_hours,
        raise_flag=detector.raise_flag,
    )
    audit.on_commit(checkpoints.on_commit)  # checkpoint the chain as it grows
    discovery = Discovery(settings.oidc.issuer) if settings.oidc else None
    authn = Authenticator.from_settings(settings, discovery)
    signin = (
        SignIn(
            OidcClient(settings.oidc, discovery, discovery),
            SignInStore(engine),
            authn,
            AttemptLimiter(settings.unauthenticated_per_minute),
        )
        if settings.oidc and discovery
        else None
    )
    flow = FootageFlow(
        authn=authn,
        cameras=cameras,
        authorizer=Authorizer(policy, covering_grant),
        grants=grants,
        storage=storage,
        facts=facts,
        retention_days=settings.retention_days,
        metrics=metrics,
        # Every access decision is shown to detection before its response is sent.
        recorder=Recorder(audit, metrics, observers=(detector, reviews), notices=ViewNotices()),
        attempts=AttemptLimiter(settings.unauthenticated_per_minute),
        presigner=presigner_of(storage) if settings.delivery == DeliveryMode.REDIRECT else None,
        accel_prefix=settings.accel_prefix if settings.delivery == DeliveryMode.ACCEL else None,
        admit=detector.admit,  # inside every allowed staff decision (contract §8)
    )
    playback = build_playback(settings, engine, create_relaxed_engine(engine), flow, audit, grants)
    outbox = OutboxStore(engine)
    deliverer = build_deliverer(settings, outbox, audit, metrics, detector)
    audit.on_companions(notifications.name, deliverer.kick)  # post a batch's notifications now
    cluster = Cluster.build(
        settings, engine, policy, record=audit.append, registry=metrics.registry
    )
    return Services(
        settings=settings,
        engine=engine,
        storage=storage,
        policy=policy,
        audit_store=audit_store,
        audit=audit,
        grants=grants,
        cameras=cameras,
        principals=principals,
        facts=facts,
        flow=flow,
        metrics=metrics,
        detector=detector,
        checkpoints=checkpoints,
        cluster=cluster,
        access_requests=access_requests,
        reviews=reviews,
        sweeper=Sweeper(
            access_requests, reviews, every=lambda: policy.approvals.check_every_seconds
        ),
        playback=playback,
        outbox=outbox,
        deliverer=deliverer,
        owns_engine=owns_engine,
        signin=signin,
    )


def build_deliverer(
    settings: Settings, outbox: OutboxStore, audit: AuditLog, metrics: Metrics, detector: Detector
) -> Deliverer:
    """The outbox worker: customer notifications per FOOTGW_NOTIFY_*, security alerts per
    FOOTGW_ALERT_WEBHOOK and detection.toml's [alerts] (as before the outbox carried them)."""
    notify = settings.notify
    alerts = detector.config.alerts
    routes = {
        Destination.CUSTOMER: Route(
            url=notify.webhook,
            max_attempts=notify.max_attempts,
            timeout=notify.timeout_seconds,
            backoff=notify.backoff_seconds,
            backoff_max=notify.backoff_max_seconds,
            log_as="notification",
        ),
        Destination.ALERT: Route(
            url=settings.alert_webhook,
            max_attempts=alerts.retries + 1,
            timeout=alerts.timeout_seconds,
            backoff=alerts.backoff_seconds,
            backoff_max=notify.backoff_max_seconds,
            log_as="alert",
        ),
    }
    return Deliverer(
        outbox,
        audit,
        metrics,
        Signer(notify.secret),
        routes,
        poll_seconds=notify.poll_seconds,
        expiry_warning_seconds=notify.expiry_warning_seconds,
    )
