"""Camera routes: the owner sets a camera's zone; the owner and security read them."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.api.access import requires
from gateway.api.common import admin_event, commit, json_body, services
from gateway.audit.events import Event
from gateway.cameras import Camera, parse_camera_update
from gateway.errors import BadRequest, NotFound
from gateway.services import Services
from gateway.types import CameraRef, EventType, Principal, Zone, is_valid_id


def _camera_owner(request: Request) -> str:
    return _camera(request).customer_id


def _customer(request: Request) -> str:
    customer_id = request.path_params["customer_id"]
    if not is_valid_id(customer_id):
        raise BadRequest("Malformed customer id.")
    return str(customer_id)


@requires(owner=_camera_owner, message="Only the owner may do this.", code="not_owner")
async def put_camera(request: Request, principal: Principal) -> Response:
    camera = _camera(request)
    zone, label = parse_camera_update(await json_body(request))
    svc = services(request)
    if not await is_known(svc, camera):
        raise NotFound("No such camera: it has no footage and no zone.")
    now = datetime.now(UTC)

    def change(conn: Connection) -> tuple[Zone, Camera]:
        previous = svc.cameras.zone_of(camera, conn)  # in the same transaction: no lost update
        return previous, svc.cameras.set(camera, zone, label, principal.sub, now, conn)

    def event_of(changed: tuple[Zone, Camera]) -> Event:
        return admin_event(
            request,
            principal,
            EventType.CAMERA_UPDATED,
            action="camera.update",
            customer_id=camera.customer_id,
            camera_id=camera.camera_id,
            detail={"zone": str(zone), "previous_zone": str(changed[0]), "label": label},
        )

    (_, saved), _ = await commit(request, change, event_of)
    return JSONResponse(saved.as_json())


@requires(
    "cameras.read_any",
    owner=_customer,
    message="Only the owner or security may list these cameras.",
    code="not_owner",
)
async def list_cameras(request: Request, _caller: Principal) -> Response:
    customer_id = _customer(request)
    found = await known_cameras(services(request), customer_id)
    return JSONResponse({"customer_id": customer_id, "cameras": [c.as_json() for c in found]})


async def known_cameras(svc: Services, customer_id: str) -> list[Camera]:
    """A customer's cameras: those storage lists (it holds their footage) and those with a zone.

    The one answer to "is there such a camera" (docs/contract.md §4): a camera outside it can be
    neither zoned nor granted, so a typo never stands as a grant or a zone nobody can see.
    """
    stored = await svc.storage.list_cameras(customer_id)
    return await anyio.to_thread.run_sync(svc.cameras.for_customer, customer_id, stored)


async def is_known(svc: Services, camera: CameraRef) -> bool:
    """Whether known_cameras lists this camera."""
    found = await known_cameras(svc, camera.customer_id)
    return any(c.camera_id == camera.camera_id for c in found)


def _camera(request: Request) -> CameraRef:
    p = request.path_params
    if not (is_valid_id(p["customer_id"]) and is_valid_id(p["camera_id"])):
        raise BadRequest("Malformed customer or camera id.")
    return CameraRef(p["customer_id"], p["camera_id"])


routes = [
    Route("/v1/cameras/{customer_id}/{camera_id}", put_camera, methods=["PUT"]),
    Route("/v1/cameras/{customer_id}", list_cameras, methods=["GET"]),
]
