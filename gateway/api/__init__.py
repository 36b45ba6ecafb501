"""The HTTP API: thin route handlers, gathered here."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.settings import Settings


def routes(settings: Settings | None = None) -> list[BaseRoute]:
    """Every route of the gateway, API first, then the console (its CSP from `settings`)."""
    from gateway.api import (
        access_requests,
        audit,
        cameras,
        flags,
        footage,
        grants,
        health,
        me,
        openapi,
        playback,
        principals,
        reviews,
    )

    found: list[BaseRoute] = []
    modules = (footage, playback, cameras, grants, access_requests, reviews, me, audit, flags)
    for module in (*modules, principals, health, openapi):
        found.extend(module.routes)
    from gateway.console.routes import console_routes
    from gateway.signin import routes as signin
    from gateway.storage import media_origins

    found.extend(signin.routes)
    found.extend(console_routes(media_origins(settings) if settings else ()))
    return found
