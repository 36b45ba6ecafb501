"""Run the app under uvicorn with the settings' host and port."""

from __future__ import annotations

import socket

import structlog
import uvicorn

from gateway import migrations
from gateway.app import create_app
from gateway.db import create_db_engine
from gateway.logging_setup import configure_logging
from gateway.settings import Settings, require_key_source

GRACEFUL_SHUTDOWN_SECONDS = 25

log = structlog.get_logger("gateway.server")


def serve(settings: Settings, *, migrate: bool = False) -> int:
    """Check the configuration and schema, then serve until interrupted."""
    require_key_source(settings)
    configure_logging(settings.log_format)
    if settings.dev_mode:
        # Loud on purpose: dev mode accepts tokens anyone with this machine's data dir can mint.
        log.warning(
            "dev_mode_enabled",
            message="FOOTGW_DEV_MODE=1: tokens signed by the local dev key are accepted. "
            "Never run a deployment like this (docs/deploy.md).",
            dev_key_file=str(settings.dev_key_file),
        )
    engine = create_db_engine(settings.database_url)
    try:
        if migrate:
            migrations.migrate(engine)
        migrations.check(engine)
    except migrations.SchemaError as exc:
        print(f"footage-gateway: {exc}")
        return 2
    engine.dispose()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # structlog owns logging; every request is in the audit log anyway
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is honoured only from FOOTGW_TRUSTED_PROXIES
        # On SIGTERM (a rolling update), streams get this long to finish before the lifespan
        # shutdown flushes the audit log: within Kubernetes' grace period (deploy/k8s).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    _Server(config).run()
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does (uvicorn's own line is off)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []) if self.started else []:
            for bound in server.sockets:
                host, port = bound.getsockname()[:2]
                log.info("listening", url=f"http://{_url_host(host)}:{port}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
