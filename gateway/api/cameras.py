"""Camera routes: the owner sets a camera's zone; the owner and security read them."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.common import caller, json_body, record, require_owner, services
from gateway.cameras import parse_camera_update
from gateway.errors import BadRequest, Forbidden
from gateway.types import CameraRef, EventType, is_valid_id


async def put_camera(request: Request) -> Response:
    principal = await caller(request)
    camera = _camera(request)
    require_owner(principal, camera.customer_id)
    zone, label = parse_camera_update(await json_body(request))
    svc = services(request)
    previous = await anyio.to_thread.run_sync(svc.cameras.zone_of, camera)
    saved = await anyio.to_thread.run_sync(
        svc.cameras.set, camera, zone, label, principal.sub, datetime.now(UTC)
    )
    await record(
        request,
        principal,
        EventType.CAMERA_UPDATED,
        action="camera.update",
        customer_id=camera.customer_id,
        camera_id=camera.camera_id,
        detail={"zone": str(zone), "previous_zone": str(previous), "label": label},
    )
    return JSONResponse(saved.as_json())


async def list_cameras(request: Request) -> Response:
    principal = await caller(request)
    customer_id = request.path_params["customer_id"]
    if not is_valid_id(customer_id):
        raise BadRequest("Malformed customer id.")
    svc = services(request)
    owner = "customer" in principal.roles and principal.customer_id == customer_id
    if not owner and not svc.policy.may(principal, "cameras.read_any"):
        raise Forbidden("Only the owner or security may list these cameras.", code="not_owner")
    stored = await svc.storage.list_cameras(customer_id)
    found = await anyio.to_thread.run_sync(svc.cameras.for_customer, customer_id, stored)
    return JSONResponse({"customer_id": customer_id, "cameras": [c.as_json() for c in found]})


def _camera(request: Request) -> CameraRef:
    p = request.path_params
    if not (is_valid_id(p["customer_id"]) and is_valid_id(p["camera_id"])):
        raise BadRequest("Malformed customer or camera id.")
    return CameraRef(p["customer_id"], p["camera_id"])


routes = [
    Route("/v1/cameras/{customer_id}/{camera_id}", put_camera, methods=["PUT"]),
    Route("/v1/cameras/{customer_id}", list_cameras, methods=["GET"]),
]
