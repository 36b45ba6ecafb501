"""Run the app under uvicorn with the settings' host and port."""

from __future__ import annotations

import uvicorn

from gateway import migrations
from gateway.app import create_app
from gateway.db import create_db_engine
from gateway.logging_setup import configure_logging
from gateway.settings import Settings, require_key_source

GRACEFUL_SHUTDOWN_SECONDS = 25


def serve(settings: Settings, *, migrate: bool = False) -> int:
    """Check the configuration and schema, then serve until interrupted."""
    require_key_source(settings)
    configure_logging(settings.log_format)
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
    uvicorn.Server(config).run()
    return 0
