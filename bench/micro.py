"""In-process microbenchmarks, run by bench/run.py as `python bench/micro.py DATA_DIR OUT.json`.

- authn + authz per request: what FootageFlow.view pays before the audit write (a known token,
  the principal's status, the camera's zone, the Casbin rule and the grant lookup among 10,000
  active grants), one request at a time, each timed on its own.
- a cold token: the same, with a token never seen before (full EdDSA verification).
- durable audit appends: 32 concurrent writers each awaiting AuditLog.append in a loop, on the
  gateway's own SQLite store (WAL, synchronous=FULL) with its commit hooks (checkpoints).

Its own process, so that the structured log (every audit event is a line on stderr) goes to a
file and nothing here shares a heap or a GIL with the client or the orchestrator.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import fixtures

from gateway.audit.events import new_event
from gateway.calls import FootageCall
from gateway.logging_setup import configure_logging
from gateway.services import Services, build_services
from gateway.settings import load_settings
from gateway.types import Action, ClipRef, EventType, clip_recorded_at

RUNS = 5
AUTH_ITERATIONS = 2000
AUDIT_WRITERS = 32
AUDIT_PER_WRITER = 150


def _call(world: fixtures.World, i: int, token: str | None = None) -> FootageCall:
    headers = world.agent_headers(i % fixtures.AGENTS)
    return FootageCall(
        method="GET",
        action=Action.VIEW,
        customer_id=fixtures.CUSTOMER,
        camera_id=fixtures.CAMERA,
        clip_id=fixtures.CLIP,
        authorization=f"Bearer {token}" if token else headers["Authorization"],
        purpose=headers["X-Access-Purpose"],
        justification=headers["X-Access-Justification"],
        range_header="bytes=0-65535",
        request_id=f"bench{i:08d}",
        client_ip="127.0.0.1",
        user_agent="bench",
    )


async def auth_once(services: Services, call: FootageCall, clip: ClipRef) -> float:
    """One request's authentication and authorization, as FootageFlow.view runs them."""
    flow = services.flow
    began = time.perf_counter()
    principal = await flow.authn.authenticate(call.authorization)
    decision, _zone = await flow.authorize(call, principal, clip)
    elapsed = time.perf_counter() - began
    if not decision:
        raise RuntimeError(f"the bench request was denied: {decision.reason}")
    return elapsed


async def auth_run(services: Services, world: fixtures.World, cold: bool) -> float:
    """The median of AUTH_ITERATIONS single requests, in seconds."""
    clip = ClipRef(
        fixtures.CUSTOMER, fixtures.CAMERA, fixtures.CLIP, clip_recorded_at(fixtures.CLIP)
    )  # type: ignore[arg-type]
    iterations = AUTH_ITERATIONS // 10 if cold else AUTH_ITERATIONS
    times = []
    for i in range(iterations):
        token = (
            world.token(f"agent-cold-{i}-{time.monotonic_ns()}", "support_agent") if cold else None
        )
        times.append(await auth_once(services, _call(world, i, token), clip))
    return statistics.median(times)


def _event(i: int, writer: int) -> dict[str, object]:
    return new_event(
        EventType.ACCESS_DECISION,
        request_id=f"w{writer}r{i}",
        principal=f"agent-{writer}",
        roles=["support_agent"],
        purpose="customer_support",
        justification=f"{fixtures.TICKET} customer asked",
        action="view",
        customer_id=fixtures.CUSTOMER,
        camera_id=fixtures.CAMERA,
        clip_id=fixtures.CLIP,
        decision="allow",
        reason="grant",
        grant_id="gr_bench",
        status=206,
        range="bytes=0-65535",
        client_ip="127.0.0.1",
        user_agent="bench",
        detail={
            "rule": "support_agent, customer_support, view, indoor, allow, grant",
            "zone": "indoor",
            "method": "GET",
        },
    )


async def audit_run(services: Services) -> float:
    """Events per second committed by AUDIT_WRITERS writers, each awaiting its own appends."""
    audit = services.audit

    async def writer(w: int) -> None:
        for i in range(AUDIT_PER_WRITER):
            await audit.append(_event(i, w))

    began = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(AUDIT_WRITERS)))
    return AUDIT_WRITERS * AUDIT_PER_WRITER / (time.perf_counter() - began)


async def main(world: fixtures.World, data_dir: Path, out: Path) -> None:
    settings = load_settings(world.env(data_dir))
    services = build_services(settings)
    results: dict[str, list[float]] = {"auth_warm_s": [], "auth_cold_s": [], "audit_eps": []}
    try:
        await auth_run(services, world, cold=False)  # warm the caches and the pool
        await audit_run(services)
        for _ in range(RUNS):
            results["auth_warm_s"].append(await auth_run(services, world, cold=False))
            results["auth_cold_s"].append(await auth_run(services, world, cold=True))
            results["audit_eps"].append(await audit_run(services))
    finally:
        await services.close()
    out.write_text(json.dumps(results))


def run(world: fixtures.World, data_dir: Path, out: Path) -> None:
    configure_logging("json")  # stderr: a file, as the orchestrator started us
    try:
        import uvloop  # what uvicorn picks under `footage-gateway serve`

        uvloop.run(main(world, data_dir, out))
    except ImportError:
        asyncio.run(main(world, data_dir, out))


if __name__ == "__main__":
    root, data, result = (Path(a) for a in sys.argv[1:4])
    run(fixtures.load_world(root), data, result)
