"""What `footage-gateway demo` does: seed, print the walk-through, run a scenario, serve."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.demo import SCENARIOS
from gateway.demo.tokens import tokens
from gateway.demo.walkthrough import seed_walkthrough, walkthrough
from gateway.errors import ConfigError
from gateway.logging_setup import configure_logging
from gateway.settings import Settings


def run_demo(settings: Settings, *, scenario: str = "basic", serve_after: bool = True) -> int:
    """Seed, print the walk-through, and serve (dev mode only: it mints tokens)."""
    if not settings.dev_mode:
        raise ConfigError("FOOTGW_DEV_MODE", "the demo mints dev tokens: set it to 1")
    if scenario not in SCENARIOS:
        raise ConfigError("--scenario", f"no scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    if serve_after:
        from gateway.server import require_free_port

        require_free_port(settings)  # before the curl lines, which would name a port not ours
    # Logs to stderr from the start: the in-process scenario's audit lines would otherwise land
    # on stdout, between the curl lines a newcomer is meant to paste.
    configure_logging(settings.log_format)
    now = datetime.now(UTC)
    clip_ids = asyncio.run(seed_walkthrough(settings, now))
    base = f"http://{settings.host}:{settings.port}"
    minted = tokens(settings)
    print(walkthrough(base, clip_ids[0], minted, now), flush=True)
    if scenario == "browsing":
        from gateway.demo.browsing import run_scenario  # builds the whole app: only when asked

        run_scenario(settings, minted, now)
    if not serve_after:
        return 0
    from gateway.server import serve

    return serve(settings, migrate=True)
