"""create_app(settings): the Starlette app, its routes, and the lifespan that builds Services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.api import routes
from gateway.middleware import RequestContextMiddleware, error_handlers
from gateway.playlane import PlayLane
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.signin.cookies import SessionCookies

log = structlog.get_logger("gateway.app")


def create_app(
    settings: Settings, engine: Engine | None = None, *, play_lane: bool = True
) -> Starlette:
    """The ASGI app. Services are built in the lifespan, never at import time (STYLE §7).

    `play_lane=False` sends play requests through the router like every other request: the
    tests compare the two (gateway/playlane.py).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Services]]:
        services = build_services(settings, engine)
        try:
            await services.start()
        except BaseException:
            await services.close()
            raise
        log.info(
            "gateway_started",
            storage=settings.storage,
            delivery=settings.delivery,
            policy_rules=services.policy.rule_count,
        )
        try:
            # Lifespan state: Starlette gives every request a copy, as request.state.services.
            yield {"services": services}
        finally:
            await services.close()
            log.info("gateway_stopped")

    # Outermost first: the request id, then play requests leave for their own lane, then a
    # console session's cookie becomes its bearer token.
    middleware = [Middleware(RequestContextMiddleware), Middleware(SessionCookies)]
    if play_lane:
        middleware.insert(1, Middleware(PlayLane))
    if settings.trusted_proxies:  # X-Forwarded-For only from proxies we were told to trust
        middleware.insert(
            0, Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
        )
    route_list: list[BaseRoute] = routes(settings)
    return Starlette(
        routes=route_list,
        middleware=middleware,
        exception_handlers=error_handlers(),
        lifespan=lifespan,
    )


@contextlib.asynccontextmanager
async def in_process(app: Starlette) -> AsyncIterator[ASGIApp]:
    """Run app's lifespan around a block, and yield the app as a server would serve it.

    For in-process clients (httpx.ASGITransport) that run no lifespan: like uvicorn, the
    wrapper gives each request a copy of the lifespan's state (request.state.services).
    """
    async with app.router.lifespan_context(app) as state:

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        yield serve
