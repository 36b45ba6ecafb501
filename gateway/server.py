"""Run the app under uvicorn with the settings' host and port, and the server's own limits.

The limits hold before the app sees a byte (docs/security.md, "Hardening"): request headers
larger than `max_header_bytes` are refused 431, headers not complete within `header_timeout`
of a request's start are refused 408 and the connection closed (however slowly they drip in:
the deadline is not reset by each byte, which is what a slowloris counts on), and beyond
`max_connections` open connections a request is answered 503 by uvicorn itself.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from contextlib import suppress
from dataclasses import dataclass, replace

import structlog
import uvicorn
from starlette.types import ASGIApp

from gateway import migrations
from gateway.app import create_app
from gateway.db import create_db_engine
from gateway.errors import ConfigError
from gateway.logging_setup import configure_logging
from gateway.preflight import preflight
from gateway.protocol import bounded_protocol
from gateway.settings import Settings, require_key_source
from gateway.workers import STARTUP_FAILURE, Supervisor, available_cpus

GRACEFUL_SHUTDOWN_SECONDS = 25

log = structlog.get_logger("gateway.server")


def serve(settings: Settings, *, migrate: bool = False) -> int:
    """Check the configuration and schema, then serve until interrupted."""
    require_key_source(settings)
    require_free_port(settings)
    preflight(settings)  # a named file, directory or database that is not usable: exit 2
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
        print(f"footage-gateway: {exc}", file=sys.stderr)
        return 2
    engine.dispose()
    workers = settings.workers or available_cpus()
    settings = replace(settings, workers=workers)  # detection picks shared counters when > 1
    config = server_config(create_app(settings), settings.host, settings.port)
    if workers == 1:
        _Server(config).run()
        return 0
    _preload(settings)  # imported once here, not once per worker
    sock = config.bind_socket()  # once, here: every worker accepts on this one socket
    sock.listen(config.backlog)  # connections queue from now on, while the workers start
    return Supervisor(workers, sock, lambda s: _run_worker(config, s)).run()


def _preload(settings: Settings) -> None:
    """Import what each worker's lifespan would import on its own (a storage, the database
    appender, the counters, anyio's backend) before forking, so that N workers share the one
    import (copy-on-write) instead of each compiling it at startup."""
    storage = "s3" if settings.storage.startswith("s3://") else "fs"
    names = ["anyio._backends._asyncio", f"gateway.storage.{storage}"]
    names.append(
        "gateway.detection.redis_counters"
        if settings.redis_url
        else "gateway.detection.sqlite_counters"
    )
    if settings.database_url.startswith("postgresql"):
        names.append("gateway.audit.pg_append")
    for name in names:
        with suppress(ImportError):  # a worker that needs it raises the error itself
            importlib.import_module(name)


def _run_worker(config: uvicorn.Config, sock: socket.socket) -> int:
    """One worker process: uvicorn on the supervisor's socket; 3 if its startup failed."""
    server = _Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold of the server before the app is asked anything."""

    max_header_bytes: int = 16 * 1024  # request line and headers; a JWT is a few KiB at most
    header_timeout: float = 10.0  # from a request's start (or connect) to its last header byte
    max_connections: int = 1000  # uvicorn answers 503 beyond this (limit_concurrency)
    keep_alive: float = 5.0  # an idle kept-alive connection is closed after this


def server_config(
    app: ASGIApp, host: str, port: int, limits: Limits | None = None
) -> uvicorn.Config:
    """The uvicorn configuration `serve` runs (and tests run, with their own limits)."""
    limits = limits or Limits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(limits.max_header_bytes, limits.header_timeout),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=int(limits.keep_alive),
        log_config=None,  # structlog owns logging; every request is in the audit log anyway
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is honoured only from FOOTGW_TRUSTED_PROXIES
        # On SIGTERM (a rolling update), streams get this long to finish before the lifespan
        # shutdown flushes the audit log: within Kubernetes' grace period (deploy/k8s).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def require_free_port(settings: Settings) -> None:
    """ConfigError naming FOOTGW_PORT when host:port cannot be bound (another server has it).

    Asked before anything is printed: `demo` would otherwise print curl lines for a port that
    another process answers, and uvicorn's own bind error is one log line among many, exit 3.
    """
    if settings.port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(
            "FOOTGW_PORT",
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}): "
            "is another server using it? Set FOOTGW_PORT to a free port",
        ) from exc


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does (uvicorn's own line is off)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []) if self.started else []:
            for bound in server.sockets:
                host, port = bound.getsockname()[:2]
                log.info("listening", url=f"http://{_url_host(host)}:{port}", pid=os.getpid())


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
