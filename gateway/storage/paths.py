"""Where a clip lives in a store, `{customer_id}/{camera_id}/{clip_id}`, and why a path is not one.

One reading of a stored path, shared by the retention sweep (which takes the clips) and
`footage-gateway storage check` (which reports everything else), so the two never disagree on
what a clip is. The ids are judged by gateway.types' validators, the very ones the request path
uses (docs/security.md §3), so a path passes here exactly when its parts are ids a request
could name.
"""

from __future__ import annotations

from gateway.storage.base import ObjectKind, StoredObject
from gateway.types import ClipRef, clip_recorded_at, is_valid_id

_ID_SHAPE = "[A-Za-z0-9_-]{1,64}"
_CLIP_SHAPE = "YYYYMMDDTHHMMSSZ[-suffix][.ext], a real time, at most 64 characters"


def clip_at(found: StoredObject) -> ClipRef | None:
    """The clip a walked object is, or None if problem_with() has something to say of it."""
    if problem_with(found) is not None:
        return None
    customer_id, camera_id, clip_id = found.path.split("/")
    recorded_at = clip_recorded_at(clip_id)
    assert recorded_at is not None  # problem_with checked it
    return ClipRef(customer_id, camera_id, clip_id, recorded_at)


def problem_with(found: StoredObject) -> str | None:
    """Why a walked object is not a clip the gateway can serve, or None if it is one."""
    if found.kind is ObjectKind.SYMLINK:
        return "a symlink, not a regular file (not followed)"
    if found.kind is not ObjectKind.FILE:
        return "not a regular file (a FIFO, socket or device)"
    parts = found.path.split("/")
    if len(parts) != 3:
        return f"not customer/camera/clip: {len(parts)} path part(s) instead of 3"
    customer_id, camera_id, clip_id = parts
    if not is_valid_id(customer_id):
        return f"customer id is not {_ID_SHAPE}"
    if not is_valid_id(camera_id):
        return f"camera id is not {_ID_SHAPE}"
    if clip_recorded_at(clip_id) is None:
        return f"clip id is not {_CLIP_SHAPE}"
    return None
