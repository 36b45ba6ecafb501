"""Liveness, readiness (database, storage, audit writable, detection counting) and metrics."""

from __future__ import annotations

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.common import services
from gateway.db import begin_write, lock_audit_chain
from gateway.errors import DetectionUnavailable, GatewayError


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}

    def audit_writable() -> None:
        # Take the audit write lock and let go: proves the log could take the next event.
        with begin_write(svc.engine) as conn:
            lock_audit_chain(conn)
            conn.execute(sa.text("SELECT 1"))

    try:
        await anyio.to_thread.run_sync(audit_writable)
        checks["database"] = checks["audit"] = "ok"
    except Exception as exc:
        checks["database"] = checks["audit"] = f"failed: {type(exc).__name__}"
    try:
        await svc.storage.check()
        checks["storage"] = "ok"
    except GatewayError as exc:
        checks["storage"] = f"failed: {exc.code}"
    try:
        # Not ready while staff would be refused: Redis's counters are part of the decision.
        await svc.detector.ready()
        checks["detection"] = "ok"
    except DetectionUnavailable as exc:
        checks["detection"] = f"failed: {exc.code}: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    # A detail, never a check: a webhook that is down must not take the gateway out of
    # service, and no request ever waits on delivery (contract §14).
    detail = {"notifications": svc.deliverer.status}
    return JSONResponse({"ready": ready, "checks": checks, "detail": detail}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(
        services(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
