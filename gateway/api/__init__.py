"""The HTTP API: thin route handlers, gathered here."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.settings import Settings


def routes(settings: Settings | None = None) -> list[BaseRoute]:
    """Every route of the gateway, API first, then the console (its CSP from `settings`)."""
    from gateway.api import (
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
    )

    found: list[BaseRoute] = []
    for module in (
        footage,
        playback,
        cameras,
        grants,
        me,
        audit,
        flags,
        principals,
        health,
        openapi,
    ):
        found.extend(module.routes)
    from gateway.console.routes import console_routes
    from gateway.storage import media_origins

    found.extend(console_routes(media_origins(settings) if settings else ()))
    return found
