"""Grant routes: the owner grants and revokes; staff see the grants addressed to them."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import is_customer, permits, requires
from gateway.api.cameras import known_cameras
from gateway.api.common import admin_event, commit, json_body, services
from gateway.audit.events import Event
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.grants import ALL_CAMERAS, Grant, grantee_names, parse_new_grant
from gateway.services import Services
from gateway.types import EventType, Principal

REVOKE_ANY = "grants.revoke_any"  # security's policy action: revoke any customer's grant


@requires(
    customer=True, message="Only a customer can grant access to their footage.", code="not_owner"
)
async def create_grant(request: Request, principal: Principal) -> Response:
    svc = services(request)
    now = datetime.now(UTC)
    grant = parse_new_grant(
        await json_body(request), principal, now, svc.settings.grant_max_ttl_seconds
    )
    await check_grantable(svc, grant.customer_id, grant.purpose, grant.cameras)
    event = admin_event(
        request,
        principal,
        EventType.GRANT_CREATED,
        action="grant.create",
        customer_id=grant.customer_id,
        grant_id=grant.grant_id,
        purpose=grant.purpose,
        detail=grant.as_json(now),
    )
    _, sealed = await commit(request, lambda conn: svc.grants.create(grant, conn), lambda _: event)
    return JSONResponse(grant.as_json(now), 201, headers=_event_header(sealed))


async def check_grantable(
    svc: Services, customer_id: str, purpose: str, cameras: tuple[str, ...]
) -> None:
    """A grant (or access request) that could never be used is refused: a purpose the policy
    denies to every role (asked of the policy as it stands, so editing policies/ changes the
    answer), or a camera the customer does not have (api/cameras.known_cameras)."""
    if not svc.policy.allows_purpose(purpose):
        raise BadRequest(
            f"The policy lets no role use {purpose}, so it cannot be granted.",
            code="purpose_not_grantable",
        )
    if cameras == (ALL_CAMERAS,):
        return
    known = {c.camera_id for c in await known_cameras(svc, customer_id)}
    unknown = [c for c in cameras if c not in known]
    if unknown:
        raise BadRequest(
            f"No such camera: {unknown[0]} has no footage and no zone.", code="unknown_camera"
        )


@requires()
async def list_grants(request: Request, principal: Principal) -> Response:
    """Customers: the grants they issued. Staff: the grants addressed to them or their roles."""
    svc = services(request)
    if is_customer(principal) and principal.customer_id:
        found = await anyio.to_thread.run_sync(svc.grants.for_customer, principal.customer_id)
    else:
        grantees = grantee_names(principal.sub, sorted(principal.known_roles))
        found = await anyio.to_thread.run_sync(svc.grants.for_grantees, grantees)
    counts = await anyio.to_thread.run_sync(svc.grants.use_counts, [g.grant_id for g in found])
    now = datetime.now(UTC)
    return JSONResponse({"grants": [g.as_json(now, counts.get(g.grant_id, 0)) for g in found]})


@requires()  # who may revoke depends on the grant: see _grant_for_revoker
async def revoke_grant(request: Request, principal: Principal) -> Response:
    """Revoke at once: the next request under this grant is denied."""
    svc = services(request)
    grant_id = request.path_params["grant_id"]
    grant = await _grant_for_revoker(request, principal, grant_id)
    now = datetime.now(UTC)
    event = admin_event(
        request,
        principal,
        EventType.GRANT_REVOKED,
        action="grant.revoke",
        customer_id=grant.customer_id,
        grant_id=grant.grant_id,
    )
    revoked, sealed = await commit(
        request,
        lambda conn: svc.grants.revoke(grant.grant_id, principal.sub, now, conn),
        lambda _: event,
    )
    return JSONResponse(revoked.as_json(now), headers=_event_header(sealed))


def _event_header(sealed: Event | None) -> dict[str, str]:
    return {"X-Audit-Event-ID": sealed["event_id"]} if sealed else {}


async def _grant_for_revoker(request: Request, principal: Principal, grant_id: str) -> Grant:
    """The grant, if this caller may revoke it; authorization is decided before existence."""
    svc = services(request)
    may_revoke_any = permits(svc.policy, principal, REVOKE_ANY)
    try:
        grant = await anyio.to_thread.run_sync(svc.grants.get, grant_id[:64])
    except NotFound:
        if may_revoke_any:
            raise
        raise Forbidden("Only the owner or security may revoke this grant.") from None
    if not permits(svc.policy, principal, REVOKE_ANY, owner_of=grant.customer_id):
        raise Forbidden("Only the owner or security may revoke this grant.", code="not_owner")
    return grant


routes = [
    Route("/v1/grants", create_grant, methods=["POST"]),
    Route("/v1/grants", list_grants, methods=["GET"]),
    Route("/v1/grants/{grant_id}", revoke_grant, methods=["DELETE"]),
]
