"""Break-glass review routes (contract §13): analysts list and close them (`reviews.manage`)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.access_requests.reviews import parse_note
from gateway.api.access import requires
from gateway.api.common import admin_event, int_param, json_body, services
from gateway.audit.events import Event
from gateway.errors import BadRequest
from gateway.types import EventType, Principal, ReviewState

MAX_REVIEW_ID = 64


@requires("reviews.manage")
async def list_reviews(request: Request, _analyst: Principal) -> Response:
    """`?state=open|closed`, `?limit=` (1 to 1000); newest first."""
    wanted = request.query_params.get("state") or None
    if wanted not in (None, *ReviewState):
        raise BadRequest("state must be open or closed.")
    state = ReviewState(wanted) if wanted else None
    limit = int_param(request, "limit", 100, 1, 1000) or 100
    reviews = services(request).reviews
    found = await anyio.to_thread.run_sync(lambda: reviews.store.search(state, limit))
    now = reviews.clock()
    return JSONResponse({"reviews": [r.as_json(now) for r in found]})


@requires("reviews.manage")
async def close_review(request: Request, analyst: Principal) -> Response:
    """Close an open review with a note; audited as `review.closed`."""
    review_id = str(request.path_params["review_id"])
    if not 1 <= len(review_id) <= MAX_REVIEW_ID:
        raise BadRequest("Malformed review id.")
    note = parse_note(await json_body(request))
    reviews = services(request).reviews

    def make(event_type: EventType, **fields: Any) -> Event:
        return admin_event(request, analyst, event_type, **fields)

    review, event = await reviews.close(review_id, analyst.sub, note, make)
    return JSONResponse(
        review.as_json(reviews.clock()), headers={"X-Audit-Event-ID": event["event_id"]}
    )


routes = [
    Route("/v1/reviews", list_reviews, methods=["GET"]),
    Route("/v1/reviews/{review_id}/close", close_review, methods=["POST"]),
]
