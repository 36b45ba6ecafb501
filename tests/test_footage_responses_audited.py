"""Every footage response is audited, and every exception while deciding is an audited
denial (contract §7): refused or failed DELETEs, methods a footage path does not allow, and a
database that fails while the request's facts are read. Every footage response, error or
not, carries `Cache-Control: private, no-store` and the server's X-Request-ID."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import create_db_engine
from gateway.types import PrincipalState, Zone
from tests.support.cluster import EITHER_DATABASE, database_settings
from tests.support.faults import assert_no_footage, trace
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
DATA = b"OUTDOOR-PORCH-BYTES" * 4096


def audited(live: Live, r: httpx.Response, status: int, code: str) -> dict:
    """`status` and `code`, no footage, no-store, and the one decision the response names."""
    assert r.status_code == status, r.text[:300]
    if r.request.method != "HEAD":
        assert r.json()["error"]["code"] == code
    assert r.headers["cache-control"] == "private, no-store"
    assert_no_footage(r, DATA)
    events = trace(live.env.settings.database_url, r.headers["x-request-id"])
    decisions = [e for e in events if e["type"] == "access.decision"]
    assert [e["event_id"] for e in decisions] == [r.headers["x-audit-event-id"]]
    event = decisions[0]
    assert event["status"] == status
    return event


@pytest.fixture
def porch(live: Live) -> Live:
    live.env.put_clip("c1", "front", CLIP, DATA)
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    return live


def owner(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def test_a_refused_delete_is_an_audited_denial(porch: Live) -> None:
    live = porch
    other = live.env.auth("bob", "customer", customer_id="c2")
    event = audited(live, live.client.delete(PATH, headers=other), 403, "not_owner")
    assert (event["decision"], event["reason"], event["principal"]) == ("deny", "not_owner", "bob")
    assert event["action"] == "delete" and event["detail"]["method"] == "DELETE"
    assert event["customer_id"] == "c1" and event["clip_id"] == CLIP
    assert event["detail"]["zone"] == "outdoor"

    anonymous = audited(live, live.client.delete(PATH), 401, "unauthenticated")
    assert anonymous["principal"] is None and anonymous["decision"] == "deny"

    escaped = live.client.delete("/v1/footage/c1/front/20261127T101500Z%2Emp4", headers=owner(live))
    assert audited(live, escaped, 400, "bad_request")["reason"] == "bad_request"
    extra = live.client.delete(f"{PATH}/more", headers=owner(live))
    assert audited(live, extra, 400, "bad_request")["decision"] == "deny"

    missing = live.client.delete("/v1/footage/c1/front/20261127T111500Z.mp4", headers=owner(live))
    # Allowed, and refused by the storage: the response names the deletion's failure event.
    assert missing.status_code == 404 and missing.headers["cache-control"] == "private, no-store"
    events = trace(live.env.settings.database_url, missing.headers["x-request-id"])
    [failed] = [e for e in events if e["event_id"] == missing.headers["x-audit-event-id"]]
    assert (failed["type"], failed["status"], failed["reason"]) == (
        "footage.delete_failed",
        404,
        "not_found",
    )
    assert not [e for e in events if e["type"] == "access.decision"]  # one record, not two
    assert live.client.get(PATH, headers=owner(live)).content == DATA  # nothing was deleted


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "OPTIONS", "PURGE"])
def test_a_method_a_clip_path_does_not_allow_is_an_audited_405(porch: Live, method: str) -> None:
    live = porch
    r = live.client.request(method, PATH, headers=owner(live))
    event = audited(live, r, 405, "method_not_allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "DELETE"}
    assert (event["principal"], event["decision"], event["reason"]) == (
        "alice",
        "deny",
        "method_not_allowed",
    )
    assert (event["customer_id"], event["camera_id"], event["clip_id"]) == ("c1", "front", CLIP)
    assert event["detail"]["method"] == method

    listing = live.client.request(method, "/v1/footage/c1/front", headers=owner(live))
    assert audited(live, listing, 405, "method_not_allowed")["clip_id"] is None
    assert "DELETE" not in listing.headers["allow"]
    # Without a token, 401 comes first, audited as ever.
    anonymous = audited(live, live.client.request(method, PATH), 401, "unauthenticated")
    assert anonymous["principal"] is None


def test_a_suspended_principal_is_refused_as_suspended_whatever_the_method(porch: Live) -> None:
    """Contract §5: a suspended principal gets 403 principal_suspended on everything, so a
    method the path does not allow says suspended too, not 405."""
    live = porch
    live.services.principals.set_status(
        "alice", PrincipalState.SUSPENDED, "test", "analyst", datetime.now(UTC)
    )
    for method in ("POST", "OPTIONS", "PURGE"):
        r = live.client.request(method, PATH, headers=owner(live))
        event = audited(live, r, 403, "principal_suspended")
        assert (event["principal"], event["reason"]) == ("alice", "principal_suspended")
        assert "allow" not in r.headers


def test_a_database_error_while_deciding_is_an_audited_denial(porch: Live) -> None:
    live = porch
    engine = create_db_engine(live.env.settings.database_url)
    try:
        with engine.begin() as conn:  # the facts' table goes away; the audit log does not
            conn.execute(sa.text("ALTER TABLE cameras RENAME TO cameras_away"))
        for r in (
            live.client.get(PATH, headers=owner(live)),
            live.client.head(PATH, headers=owner(live)),
            live.client.get("/v1/footage/c1/front", headers=owner(live)),
        ):
            event = audited(live, r, 500, "internal_error")
            assert (event["decision"], event["reason"]) == ("deny", "internal_error")
            assert event["detail"]["rule"] == "error"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE cameras_away RENAME TO cameras"))
        engine.dispose()
    assert live.client.get(PATH, headers=owner(live)).content == DATA  # and it recovers


def test_every_footage_error_is_no_store(porch: Live) -> None:
    live = porch
    staff = live.env.auth("sam", "support_agent")
    cases = [
        (live.client.get(f"{PATH}/x/y", headers=owner(live)), 400, "bad_request"),
        (live.client.get(PATH, headers={"Authorization": "Bearer nope"}), 401, "unauthenticated"),
        (live.client.get(PATH, headers=staff), 403, "purpose_required"),
        (
            live.client.get("/v1/footage/c1/front/20261127T111500Z.mp4", headers=owner(live)),
            404,
            "not_found",
        ),
        (live.client.get(PATH, headers={**owner(live), "Range": "bytes=9999999-"}), 416, ""),
    ]
    for r, status, code in cases:
        audited(live, r, status, code or "range_not_satisfiable")


@pytest.fixture(params=EITHER_DATABASE)
def on_either_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    with database_settings(request.param) as database:
        env = make_env(tmp_path, database)
        env.put_clip("c1", "front", CLIP, DATA)
        with start_live(env) as live:
            yield live


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/v1/footage/c%00/front/{CLIP}", 401, "unauthenticated"),
        (f"/v1/footage/c1/fr%00nt/{CLIP}", 401, "unauthenticated"),
        ("/v1/footage/c1/front/x%00", 401, "unauthenticated"),
        ("/v1/footage/c%00/front/a/b", 401, "unauthenticated"),
    ],
)
def test_a_nul_escaped_into_a_footage_path_is_still_an_audited_refusal(
    on_either_database: Live, path: str, status: int, code: str
) -> None:
    """A `%00` decodes to a NUL, which PostgreSQL's text columns refuse: the attempt must still
    be audited (as what was sent, the NUL shown as U+FFFD), never a 503 that records nothing."""
    live = on_either_database
    event = audited(live, live.client.get(path), status, code)
    assert "\x00" not in str(event) and "\ufffd" in str(event)
    owner = live.env.auth("alice", "customer", customer_id="c1", **{"X-Access-Purpose": "x"})
    r = live.client.get(f"/v1/footage/c%00/front/{CLIP}", headers=owner)
    audited(live, r, 400, "bad_request")
