"""Camera zones, set by their owners. A camera nobody has classified counts as `private`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.db import cameras, reading, writing
from gateway.errors import BadRequest
from gateway.types import CameraRef, Zone, format_ts

MAX_LABEL = 200
# Built once: on every request, building and keying the statement cost more than running it.
ZONE_BY_CAMERA = sa.select(cameras.c.zone).where(
    cameras.c.customer_id == sa.bindparam("customer_id"),
    cameras.c.camera_id == sa.bindparam("camera_id"),
)


@dataclass(frozen=True, slots=True)
class Camera:
    customer_id: str
    camera_id: str
    zone: Zone
    label: str = ""
    zone_set: bool = False  # False: never classified, so treated as private

    def as_json(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "zone": str(self.zone),
            "label": self.label,
            "zone_set": self.zone_set,
        }


def parse_camera_update(body: Any) -> tuple[Zone, str]:
    """Validate a PUT /v1/cameras body: a zone and an optional label."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    extra = sorted(set(body) - {"zone", "label"})
    if extra:
        raise BadRequest(f"Unknown field: {extra[0]}.")
    zone = body.get("zone")
    # isinstance first: a JSON list or object is unhashable, and `in` would raise TypeError.
    if not isinstance(zone, str) or zone not in Zone._value2member_map_:
        raise BadRequest("zone must be outdoor, indoor or private.")
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > MAX_LABEL or not label.isprintable():
        raise BadRequest(f"label must be printable text of at most {MAX_LABEL} characters.")
    return Zone(str(zone)), label


class CameraStore:
    """Zones and labels in the database (sync: call from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def zone_of(self, camera: CameraRef, conn: Connection | None = None) -> Zone:
        """The camera's zone; unknown or unset is `private` (fail closed)."""
        with reading(self.engine, conn) as c:
            key = {"customer_id": camera.customer_id, "camera_id": camera.camera_id}
            return zone_from_row(c.execute(ZONE_BY_CAMERA, key).first())

    def set(
        self,
        camera: CameraRef,
        zone: Zone,
        label: str,
        by: str,
        now: datetime,
        conn: Connection | None = None,
    ) -> Camera:
        """Set the zone and label (in `conn`'s transaction when given: with its audit event)."""
        values = {"zone": str(zone), "label": label, "updated_at": format_ts(now), "updated_by": by}
        key = {"customer_id": camera.customer_id, "camera_id": camera.camera_id}
        with writing(self.engine, conn) as c:
            updated = c.execute(
                cameras.update()
                .where(
                    cameras.c.customer_id == camera.customer_id,
                    cameras.c.camera_id == camera.camera_id,
                )
                .values(**values)
            ).rowcount
            if not updated:
                c.execute(cameras.insert().values(**key, **values))
        return Camera(camera.customer_id, camera.camera_id, zone, label, True)

    def for_customer(self, customer_id: str, stored: list[str]) -> list[Camera]:
        """Cameras with a zone set, plus those that only have footage (shown as private)."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(cameras.select().where(cameras.c.customer_id == customer_id))
                .mappings()
                .all()
            )
        known = {
            r["camera_id"]: Camera(customer_id, r["camera_id"], _zone(r["zone"]), r["label"], True)
            for r in rows
        }
        for camera_id in stored:
            known.setdefault(camera_id, Camera(customer_id, camera_id, Zone.PRIVATE))
        return [known[k] for k in sorted(known)]


def zone_from_row(row: Any) -> Zone:
    """The zone of a ZONE_BY_CAMERA row, or None: a camera nobody classified is private."""
    return _zone(row[0] if row is not None else None)


def _zone(value: object) -> Zone:
    """A stored zone; anything unrecognised counts as private (fail closed)."""
    return Zone(str(value)) if value in Zone._value2member_map_ else Zone.PRIVATE
