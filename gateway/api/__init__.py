"""The HTTP API: thin route handlers, gathered here."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """Every route of the gateway, API first, then the console."""
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
    from gateway.console import routes as console
    from gateway.signin import routes as signin

    found.extend(signin.routes)
    found.extend(console.routes)
    return found
