"""GET /openapi.json: the OpenAPI 3 description of every endpoint (contract §5)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_OBJECT = {"type": "object"}
ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
CLIP_ID = {
    "type": "string",
    "pattern": r"^\d{8}T\d{6}Z(-[A-Za-z0-9_-]*)?(\.[A-Za-z0-9]{1,16})?$",
    "maxLength": 64,
}
STAFF_HEADERS = [
    {
        "name": "X-Access-Purpose",
        "in": "header",
        "required": False,
        "schema": {
            "type": "string",
            "enum": [
                "customer_support",
                "safety_investigation",
                "legal_request",
                "emergency",
                "model_training",
            ],
        },
    },
    {
        "name": "X-Access-Justification",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 3, "maxLength": 500},
    },
]


def _path(*names: str) -> list[dict[str, Any]]:
    schemas = {
        "clip_id": CLIP_ID,
        "sub": {"type": "string", "maxLength": 256},
        "grant_id": {"type": "string", "maxLength": 64},
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "review_id": {"type": "string", "minLength": 1, "maxLength": 64},
    }
    return [
        {"name": n, "in": "path", "required": True, "schema": schemas.get(n, ID)} for n in names
    ]


def _op(
    summary: str,
    codes: dict[str, str],
    params: list[dict[str, Any]] | None = None,
    body: bool = False,
    content: str = "application/json",
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, text in codes.items():
        if code.startswith(("2", "3")):
            media = {
                content: {
                    "schema": JSON_OBJECT
                    if content == "application/json"
                    else {"type": "string", "format": "binary"}
                }
            }
            responses[code] = {
                "description": text,
                **({} if code in ("204", "307") else {"content": media}),
            }
        else:
            responses[code] = {
                "description": text,
                "content": {"application/json": {"schema": ERROR}},
            }
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": responses}
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": JSON_OBJECT}},
        }
    return op


AUTH_ERRORS = {"401": "No valid bearer token", "403": "Not allowed (see error.code)"}
REQUEST_STATES = ("pending", "approved", "denied", "expired", "cancelled")


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})


def _playback_paths(
    view_codes: dict[str, str], range_header: list[dict[str, Any]]
) -> dict[str, Any]:
    """Playback sessions (contract §12)."""
    token = [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]
    play_codes = {
        **{k: v for k, v in view_codes.items() if k not in ("400", "401", "403", "404")},
        "403": "The playback ended (playback_ended)",
        "404": "No such playback (playback_not_found)",
    }
    session = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "/v1/playback": {
            "post": _op(
                "Start a playback session (decided as a GET of the clip)",
                {**view_codes, "201": "The session and its URL"},
                STAFF_HEADERS,
                body=True,
            ),
            "get": _op("Live playback sessions (own, or on the customer's footage)", AUTH_ERRORS),
        },
        "/v1/playback/{session_id}": {
            "delete": _op(
                "End a playback session (its principal or the owner)",
                {"204": "Ended", **AUTH_ERRORS, "404": "Ended already", "503": "Audit unavailable"},
                session,
            )
        },
        "/v1/play/{token}": {
            "get": _op(
                "Watch through a playback URL",
                play_codes,
                token + range_header,
                content="video/mp4",
            ),
            "head": _op(
                "A playback URL's headers", play_codes, token + range_header, content="video/mp4"
            ),
        },
    }


def spec() -> dict[str, Any]:
    """The OpenAPI document."""
    clip = _path("customer_id", "camera_id", "clip_id")
    range_header = [
        {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}}
    ]
    view_codes = {
        "200": "The clip",
        "206": "One range of the clip",
        "307": "Presigned redirect",
        "400": "Malformed ids or headers",
        **AUTH_ERRORS,
        "404": "No such clip",
        "410": "Past retention",
        "416": "Range not satisfiable",
        "502": "Storage unavailable",
        "503": "Audit log unavailable",
    }
    admin = {"200": "OK", "400": "Malformed request", **AUTH_ERRORS}
    answer = {**admin, "404": "No request", "409": "Already answered", "503": "Audit unavailable"}
    filters = [
        {"name": n, "in": "query", "required": False, "schema": {"type": t}}
        for n, t in (
            ("principal", "string"),
            ("customer_id", "string"),
            ("decision", "string"),
            ("since", "string"),
            ("until", "string"),
            ("after_seq", "integer"),
            ("limit", "integer"),
        )
    ]
    paths = {
        "/v1/footage/{customer_id}/{camera_id}/{clip_id}": {
            "get": _op(
                "Stream a clip",
                view_codes,
                clip + STAFF_HEADERS + range_header,
                content="video/mp4",
            ),
            "head": _op(
                "A clip's headers",
                view_codes,
                clip + STAFF_HEADERS + range_header,
                content="video/mp4",
            ),
            "delete": _op(
                "Delete a clip for good (owner)",
                {
                    "204": "Deleted",
                    "400": "Malformed ids",
                    **AUTH_ERRORS,
                    "404": "No such clip",
                    "503": "Audit log unavailable",
                },
                clip,
            ),
        },
        "/v1/footage/{customer_id}/{camera_id}": {
            "get": _op(
                "List a camera's clips",
                {"200": "The clips", "400": "Malformed", **AUTH_ERRORS, "503": "Audit unavailable"},
                _path("customer_id", "camera_id") + STAFF_HEADERS,
            ),
        },
        **_playback_paths(view_codes, range_header),
        "/v1/cameras/{customer_id}/{camera_id}": {
            "put": _op(
                "Set a camera's zone (owner)", admin, _path("customer_id", "camera_id"), body=True
            ),
        },
        "/v1/cameras/{customer_id}": {
            "get": _op("A customer's cameras", admin, _path("customer_id"))
        },
        "/v1/grants": {
            "post": _op(
                "Grant time-limited access (owner)",
                {"201": "Created", "400": "Invalid grant", **AUTH_ERRORS},
                body=True,
            ),
            "get": _op("Grants issued (owner) or addressed to the caller (staff)", admin),
        },
        "/v1/grants/{grant_id}": {
            "delete": _op("Revoke a grant", {**admin, "404": "No grant"}, _path("grant_id"))
        },
        "/v1/access-requests": {
            "post": _op(
                "Ask a customer (or staff approvers) for access (staff)",
                {"201": "Created, pending", "400": "Invalid request", **AUTH_ERRORS},
                body=True,
            ),
            "get": _op(
                "Access requests the caller may see",
                admin,
                [_query("state", {"type": "string", "enum": list(REQUEST_STATES)}), LIMIT],
            ),
        },
        "/v1/access-requests/{request_id}": {
            "get": _op("One access request", {**admin, "404": "No request"}, _path("request_id"))
        },
        "/v1/access-requests/{request_id}/approve": {
            "post": _op("Approve, optionally narrowing", answer, _path("request_id"))
        },
        "/v1/access-requests/{request_id}/deny": {
            "post": _op("Deny, with an optional message", answer, _path("request_id"))
        },
        "/v1/access-requests/{request_id}/cancel": {
            "post": _op("Cancel (the requester)", answer, _path("request_id"))
        },
        "/v1/reviews": {
            "get": _op(
                "Break-glass reviews",
                admin,
                [_query("state", {"type": "string", "enum": ["open", "closed"]}), LIMIT],
            )
        },
        "/v1/reviews/{review_id}/close": {
            "post": _op(
                "Close a break-glass review",
                {**admin, "404": "No review"},
                _path("review_id"),
                body=True,
            )
        },
        "/v1/me/access-log": {
            "get": _op(
                "Who looked at my footage",
                admin,
                [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    },
                    {
                        "name": "before_seq",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    },
                ],
            )
        },
        "/v1/me/notifications": {
            "get": _op(
                "Notifications sent to me (newest first)",
                admin,
                [
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer"},
                    }
                    for name in ("limit", "before_seq")
                ],
            )
        },
        "/v1/audit/events": {"get": _op("Search the audit log", admin, filters)},
        "/v1/audit/verify": {"get": _op("Verify the hash chain", admin)},
        "/v1/flags": {
            "get": _op(
                "Detection flags",
                admin,
                [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["open", "resolved"]},
                    },
                    {
                        "name": "principal",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 256},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
            )
        },
        "/v1/flags/{flag_id}/resolve": {
            "post": _op("Resolve a flag", {**admin, "404": "No flag"}, _path("flag_id"), body=True)
        },
        "/v1/principals/{sub}": {"get": _op("A principal's status", admin, _path("sub"))},
        "/v1/principals/{sub}/suspend": {"post": _op("Suspend a principal", admin, _path("sub"))},
        "/v1/principals/{sub}/reinstate": {
            "post": _op("Reinstate a principal", admin, _path("sub"))
        },
        "/healthz": {"get": _op("Liveness", {"200": "Alive"})},
        "/readyz": {"get": _op("Readiness", {"200": "Ready", "503": "Not ready"})},
        "/metrics": {"get": _op("Prometheus metrics", {"200": "Metrics"}, content="text/plain")},
        # Sign-in through the identity provider (contract §15): browser routes, no bearer.
        "/auth/config": {"get": _op("How the console signs in", {"200": "Sign-in options"})},
        "/auth/login": {
            "get": _op(
                "Begin signing in at the provider",
                {"303": "To the provider", "404": "No provider", "503": "Provider down"},
                [{"name": "next", "in": "query", "required": False, "schema": {"type": "string"}}],
            )
        },
        "/auth/callback": {
            "get": _op(
                "The provider's answer",
                {"303": "Signed in", "400": "Refused", "404": "No provider"},
                [
                    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                    for name in ("code", "state", "iss", "error")
                ],
            )
        },
        "/auth/session": {
            "get": _op("The signed-in session", {"200": "Session", "401": "None", "404": "None"})
        },
        "/auth/logout": {
            "post": _op("Sign out", {"200": "Signed out", "403": "CSRF", "404": "No provider"})
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "footage-gateway", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}],
    }


async def openapi(_request: Request) -> Response:
    return JSONResponse(spec())


routes = [Route("/openapi.json", openapi, methods=["GET"])]
