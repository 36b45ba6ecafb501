"""gateway/api/access.py: every administrative route wears `requires`, and through it asks the
one suspension question, then the route's standing, in that order (401, 403 suspended, 400, 403).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.routing import Route

from gateway.api import routes
from gateway.types import PrincipalState, Role
from tests.support.server import Live

# The footage routes decide and audit in the flow (pipeline.py); these are open to anyone.
NOT_ADMINISTRATIVE = {"list_clips", "malformed", "not_allowed", "healthz", "readyz", "metrics"}
# Playback starts as a GET of the clip does (in gateway/playback/flow.py); its URL needs no token.
NOT_ADMINISTRATIVE |= {"start_playback", "play"}
# One route per clip (so a 405 lists every method): GET and HEAD decide in the flow; DELETE
# refuses a percent-escaped path (400) before authentication, then calls a guarded handler.
GUARDED_WITHIN = {"clip"}
# Every administrative route: method, path. A principal with every role, then suspended.
ADMIN_ROUTES = [
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/flags"),
    ("POST", "/v1/flags/fl_1/resolve"),
    ("GET", "/v1/principals/sam"),
    ("POST", "/v1/principals/sam/suspend"),
    ("POST", "/v1/principals/sam/reinstate"),
    ("GET", "/v1/cameras/c1"),
    ("PUT", "/v1/cameras/c1/front"),
    ("DELETE", "/v1/footage/c1/front/20261101T000000Z.mp4"),
    ("POST", "/v1/grants"),
    ("GET", "/v1/grants"),
    ("DELETE", "/v1/grants/gr_1"),
    ("GET", "/v1/me/access-log"),
    ("POST", "/v1/access-requests"),
    ("GET", "/v1/access-requests"),
    ("GET", "/v1/access-requests/ar_1"),
    ("POST", "/v1/access-requests/ar_1/approve"),
    ("POST", "/v1/access-requests/ar_1/deny"),
    ("POST", "/v1/access-requests/ar_1/cancel"),
    ("GET", "/v1/reviews"),
    ("POST", "/v1/reviews/rv_1/close"),
    ("GET", "/v1/playback"),
    ("DELETE", "/v1/playback/pb_1"),
    ("GET", "/v1/me/notifications"),
]


def _api_routes() -> list[Route]:
    return [r for r in routes() if isinstance(r, Route) and r.path.startswith("/v1/")]


def test_every_administrative_route_wears_requires() -> None:
    admin = [r for r in _api_routes() if r.name not in NOT_ADMINISTRATIVE | GUARDED_WITHIN]
    unguarded = [r.path for r in admin if not hasattr(r.endpoint, "__wrapped__")]
    assert unguarded == []
    assert len(admin) == len(ADMIN_ROUTES) - len(GUARDED_WITHIN)


def test_the_table_names_every_administrative_route() -> None:
    named = {(m, p) for m, p in ADMIN_ROUTES}
    for route in _api_routes():
        if route.name in NOT_ADMINISTRATIVE:
            continue
        methods = (route.methods or set()) - {"HEAD"}
        assert any(m in methods and _matches(route, p) for m, p in named), route.path


def _matches(route: Route, path: str) -> bool:
    return route.path_regex.match(path) is not None


def test_a_suspended_principal_is_refused_by_every_administrative_route(live: Live) -> None:
    everything = [str(r) for r in Role]
    headers = live.env.auth("root", *everything, customer_id="c1")
    assert live.client.get("/v1/grants", headers=headers).status_code == 200
    live.services.principals.set_status(
        "root", PrincipalState.SUSPENDED, "test", "analyst", datetime.now(UTC)
    )
    for method, path in ADMIN_ROUTES:
        r = live.client.request(method, path, headers=headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "principal_suspended", (method, path)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/audit/events", "forbidden"),
        ("POST", "/v1/principals/sam/suspend", "forbidden"),
        ("GET", "/v1/cameras/c2", "not_owner"),
        ("PUT", "/v1/cameras/c2/front", "not_owner"),
        ("DELETE", "/v1/footage/c2/front/20261101T000000Z.mp4", "not_owner"),
        ("POST", "/v1/grants", "not_owner"),
        ("GET", "/v1/me/access-log", "not_owner"),
    ],
)
def test_standing_is_checked_after_the_path(live: Live, method: str, path: str, code: str) -> None:
    agent = live.env.auth("sam", "support_agent")
    refused = live.client.request(method, path, headers=agent, json={})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == code
    if "/c2" in path:  # a malformed id is 400 before standing is looked at
        bad = live.client.request(method, path.replace("c2", "c%202"), headers=agent, json={})
        assert bad.status_code == 400, bad.text
    anonymous = live.client.request(method, path, json={})
    assert anonymous.status_code == 401


def test_the_owner_has_standing_and_another_customer_none(live: Live) -> None:
    owner = live.env.auth("alice", "customer", customer_id="c1")
    stranger = live.env.auth("bob", "customer", customer_id="c2")
    assert live.client.get("/v1/cameras/c1", headers=owner).status_code == 200
    r = live.client.get("/v1/cameras/c1", headers=stranger)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_owner"
    analyst = live.env.auth("ana", "security_analyst")
    assert live.client.get("/v1/cameras/c1", headers=analyst).status_code == 200
