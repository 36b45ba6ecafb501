"""Authorization edge cases an insider with a valid token would try.

Prefix and case look-alike ids, principals that look like grantees, grant windows at the exact
second (also from gateway processes running under other time zones), and Casbin given hostile
values: over HTTP through the real flow, and straight into the policy engine. Every denial is
asserted with its status, its reason, zero footage bytes and the one decision event it left.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.authz import Authorizer, PolicyEngine
from gateway.db import create_db_engine
from gateway.settings import REPO_POLICY_DIR
from gateway.types import AccessRequest, Action, CameraRef, Principal, Purpose, Role, Zone
from tests.support.faults import GatewayProcess, assert_denied, assert_unauthenticated, trace
from tests.support.server import GatewayEnv, Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
SECRET = b"BEDROOM-CAM-BYTES-" * 1024
TICKET = "CASE-1"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def home_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = make_env(tmp_path_factory.mktemp("home"))
    for customer in ("c1", "c10", "c1_", "C1", "c1-"):
        env.set_zone(customer, "front", Zone.OUTDOOR)
        env.put_clip(customer, "front", CLIP, SECRET)
    for camera in ("front2", "fron", "FRONT"):
        env.set_zone("c1", camera, Zone.OUTDOOR)
        env.put_clip("c1", camera, CLIP, SECRET)
    with start_live(env) as running:
        yield running


@pytest.fixture
def home(home_gateway: Live) -> Live:
    """The shared gateway with no grants yet (each test grants what it needs)."""
    engine = create_db_engine(home_gateway.env.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grants"))
    engine.dispose()
    return home_gateway


def owner(live: Live, customer: str = "c1") -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id=customer)


def grant(live: Live, **changes: Any) -> dict[str, Any]:
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T23:59:59Z",
        "expires_at": iso(datetime.now(UTC) + timedelta(hours=1)),
        "ticket": TICKET,
        **changes,
    }
    r = live.client.post("/v1/grants", json=body, headers=owner(live))
    assert r.status_code == 201, r.text
    return dict(r.json())


def staff_get(
    live: Live, path: str, sub: str = "sam", roles: tuple[str, ...] = ("support_agent",)
) -> httpx.Response:
    headers = live.env.auth(
        sub,
        *roles,
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": f"{TICKET} ask"},
    )
    return live.client.get(path, headers=headers)


def db(live: Live) -> str:
    return live.env.settings.database_url


# --- look-alike ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("other", ["c10", "c1_", "C1", "c1-"])
def test_a_customer_never_reads_a_look_alike_customer(home: Live, other: str) -> None:
    r = home.client.get(f"/v1/footage/{other}/front/{CLIP}", headers=owner(home))
    event = assert_denied(db(home), r, SECRET, 403, "not_owner")
    assert event["customer_id"] == other and event["principal"] == "alice"
    listing = home.client.get(f"/v1/footage/{other}/front", headers=owner(home))
    assert_denied(db(home), listing, SECRET, 403, "not_owner")


def test_c10_never_reads_c1(home: Live) -> None:
    r = home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(home, "c10"))
    assert_denied(db(home), r, SECRET, 403, "not_owner")


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/footage/c10/front/{CLIP}",
        f"/v1/footage/C1/front/{CLIP}",
        f"/v1/footage/c1/front2/{CLIP}",
        f"/v1/footage/c1/fron/{CLIP}",
        f"/v1/footage/c1/FRONT/{CLIP}",
    ],
)
def test_a_grant_covers_its_exact_customer_and_camera_only(home: Live, path: str) -> None:
    grant(home)
    assert staff_get(home, f"/v1/footage/c1/front/{CLIP}").status_code == 200  # control
    assert_denied(db(home), staff_get(home, path), SECRET, 403, "no_grant")


@pytest.mark.parametrize("sub", ["sam2", "Sam", "sa", "sam ", "\u0455am", "sam@example"])
def test_a_grant_names_its_exact_grantee(home: Live, sub: str) -> None:
    grant(home)
    r = staff_get(home, f"/v1/footage/c1/front/{CLIP}", sub=sub)
    assert_denied(db(home), r, SECRET, 403, "no_grant")


@pytest.mark.parametrize("sub", ["sam\u200b", "sam\t", "sam\x00", "sam\u2028"])
def test_an_unprintable_look_alike_sub_is_no_identity_at_all(home: Live, sub: str) -> None:
    grant(home)
    r = staff_get(home, f"/v1/footage/c1/front/{CLIP}", sub=sub)
    assert_unauthenticated(db(home), r, SECRET)


def test_a_sub_that_looks_like_a_role_grantee_is_not_that_role(home: Live) -> None:
    # The owner granted support leads. An agent whose identity-provider subject happens to be
    # the text "role:support_lead" is still only an agent: grantee names are one namespace
    # (subs) and role grantees another, and the two must never meet.
    grant(home, grantee="role:support_lead")
    lead = staff_get(home, f"/v1/footage/c1/front/{CLIP}", sub="lee", roles=("support_lead",))
    assert lead.status_code == 200  # control: the role the grant names
    r = staff_get(home, f"/v1/footage/c1/front/{CLIP}", sub="role:support_lead")
    event = assert_denied(db(home), r, SECRET, 403, "no_grant")
    assert event["principal"] == "role:support_lead" and event["grant_id"] is None


def test_a_ticket_is_a_whole_word_of_the_justification(home: Live) -> None:
    grant(home, ticket="T-1")
    for justification in ("T-10 ask", "XT-1 ask", "T-1_2 ask", "t-1 ask"):
        headers = home.env.auth(
            "sam",
            "support_agent",
            **{"X-Access-Purpose": "customer_support", "X-Access-Justification": justification},
        )
        r = home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
        assert_denied(db(home), r, SECRET, 403, "no_grant")


# --- grant windows at the exact second, under other server time zones ----------------------------

EDGE_CLIPS = {
    "20261127T095959Z.mp4": False,  # one second before footage_from
    "20261127T100000Z.mp4": True,  # footage_from exactly
    "20261127T120000Z.mp4": True,  # footage_until exactly
    "20261127T120001Z.mp4": False,  # one second after footage_until
}
# The same instants written with offsets: 10:00Z and 12:00Z.
WINDOW = {"footage_from": "2026-11-28T00:00:00+14:00", "footage_until": "2026-11-27T00:00:00-12:00"}
# POSIX TZ strings need no tz database: UTC+14 (Kiribati), UTC-12, and an odd half hour.
ZONES = ["LINT-14", "AOE+12", "NPT-5:45"]


@pytest.fixture(scope="module")
def window_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayEnv, Any]]:
    """One data dir, and a gateway process per time zone, started on first use."""
    root = tmp_path_factory.mktemp("tz")
    env = make_env(root)
    env.set_zone("c1", "front", Zone.OUTDOOR)
    for clip in EDGE_CLIPS:
        env.put_clip("c1", "front", clip, SECRET)
    running: dict[str, GatewayProcess] = {}

    def gateway(tz: str) -> GatewayProcess:
        if tz not in running:
            running[tz] = GatewayProcess(env.env, root / f"gateway-{len(running)}.log", TZ=tz)
            running[tz].start()
        return running[tz]

    try:
        yield env, gateway
    finally:
        for process in running.values():
            process.stop()


def _grant_body(grantee: str, expires_at: str) -> dict[str, Any]:
    return {
        "grantee": grantee,
        "purpose": "customer_support",
        "cameras": ["front"],
        **WINDOW,
        "expires_at": expires_at,
        "ticket": TICKET,
    }


def _agent(env: GatewayEnv, sub: str) -> dict[str, str]:
    return env.auth(
        sub,
        "support_agent",
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": TICKET},
    )


@pytest.mark.parametrize("tz", ZONES)
def test_grant_window_edges_hold_to_the_second_in_any_server_time_zone(
    window_env: tuple[GatewayEnv, Any], tz: str
) -> None:
    env, gateway = window_env
    with httpx.Client(base_url=gateway(tz).url, timeout=30) as c:
        expires = iso(datetime.now(UTC) + timedelta(hours=1))
        created = c.post(
            "/v1/grants", json=_grant_body(f"agent-{tz}", expires), headers=owner_of(env)
        )
        assert created.status_code == 201, created.text
        assert created.json()["footage_from"].startswith("2026-11-27T10:00:00")
        assert created.json()["footage_until"].startswith("2026-11-27T12:00:00")
        headers = _agent(env, f"agent-{tz}")
        for clip, allowed in EDGE_CLIPS.items():
            r = c.get(f"/v1/footage/c1/front/{clip}", headers=headers)
            if allowed:
                assert r.status_code == 200 and r.content == SECRET, (tz, clip)
            else:
                assert_denied(env.settings.database_url, r, SECRET, 403, "no_grant")
        listed = c.get("/v1/footage/c1/front", headers=headers).json()["clips"]
        assert [x["clip_id"] for x in listed] == [k for k, v in EDGE_CLIPS.items() if v]
        # Event times are UTC whatever TZ says.
        event = trace(env.settings.database_url, r.headers["x-request-id"])[0]
        written = datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs((written - datetime.now(UTC)).total_seconds()) < 60


def test_a_grant_stops_at_its_expiry_second_in_a_far_east_time_zone(
    window_env: tuple[GatewayEnv, Any],
) -> None:
    env, gateway = window_env
    with httpx.Client(base_url=gateway("LINT-14").url, timeout=30) as c:
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        # Written in the server's own zone (+14:00), as a client there would.
        local = expires.astimezone(timezone(timedelta(hours=14))).isoformat()
        created = c.post(
            "/v1/grants", json=_grant_body("agent-expiry", local), headers=owner_of(env)
        )
        assert created.status_code == 201, created.text
        headers = _agent(env, "agent-expiry")
        seen: list[tuple[datetime, datetime, int]] = []
        deadline = expires + timedelta(seconds=10)
        while datetime.now(UTC) < deadline:  # bounded poll until the grant has lapsed
            before = datetime.now(UTC)
            r = c.get("/v1/footage/c1/front/20261127T100000Z.mp4", headers=headers)
            seen.append((before, datetime.now(UTC), r.status_code))
            if r.status_code == 403:
                assert_denied(env.settings.database_url, r, SECRET, 403, "no_grant")
                break
        assert seen[0][2] == 200 and seen[-1][2] == 403
        for before, after, status in seen:
            if status == 200:
                assert before < expires  # never served once the second has come
            else:
                assert after >= expires  # never refused before it


def owner_of(env: GatewayEnv) -> dict[str, str]:
    return env.auth("alice", "customer", customer_id="c1")


# --- Casbin given hostile values -----------------------------------------------------------------


def _policy_rows() -> list[list[str]]:
    with open(REPO_POLICY_DIR / "policy.csv") as handle:
        rows = [
            [cell.strip() for cell in row]
            for row in csv.reader(handle)
            if row and not row[0].lstrip().startswith("#")
        ]
    return [row[1:] for row in rows if row[0] == "p"]


ROWS = _policy_rows()


def literal_answer(role: str, purpose: str, act: str, zone: str) -> bool:
    """The policy read literally: a `*` in a row matches anything; a request value is just text."""
    request = (role, purpose, act, zone)
    matched = [r for r in ROWS if all(p in ("*", v) for p, v in zip(r[:4], request, strict=True))]
    return any(r[4] == "allow" for r in matched) and not any(r[4] == "deny" for r in matched)


VOCABULARY = [*Role, *Purpose, *Zone, *Action, "own", "-", "*", "audit.read", "grants.revoke_any"]
HOSTILE = [
    '" || "1" == "1',
    "' or 1=1 --",
    "admin) || (true",
    "p.eft == allow",
    "*",
    "-",
    "",
    "customer_support\x00",
    "legal_request\n",
    "LEGAL_REQUEST",
    "__import__('os').system('true')",
    "r.role",
    "x" * 5000,
]
ENGINE = PolicyEngine(REPO_POLICY_DIR)
value = st.one_of(st.sampled_from(VOCABULARY + HOSTILE), st.text(max_size=40))


@settings(max_examples=400, deadline=None)
@given(role=value, purpose=value, act=value, zone=value)
def test_casbin_answers_hostile_values_exactly_as_the_policy_reads_literally(
    role: str, purpose: str, act: str, zone: str
) -> None:
    result = ENGINE.rule_for(role, purpose, act, zone)
    assert result.allowed == literal_answer(role, purpose, act, zone)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_request_value_of_star_or_code_is_never_a_wildcard(value: str) -> None:
    engine = PolicyEngine(REPO_POLICY_DIR)
    for request in (
        (value, "customer_support", "view", "outdoor"),
        ("support_agent", value, "view", "outdoor"),
        ("legal", "legal_request", value, "private"),
        ("support_lead", "emergency", "view", value),
        ("admin", value, "audit.read", "*"),
    ):
        assert engine.rule_for(*request).allowed == literal_answer(*request), request


@settings(max_examples=200, deadline=None)
@given(
    roles=st.frozensets(st.sampled_from([*Role, *HOSTILE]) | st.text(max_size=20), max_size=4),
    customer_id=st.sampled_from([None, "c1", "c10", "c1' OR '1'='1", "*"]),
    purpose=st.sampled_from([None, *Purpose]),
    zone=st.sampled_from(list(Zone)),
)
def test_the_authorizer_denies_unknown_roles_and_never_raises(
    roles: frozenset[str], customer_id: str | None, purpose: Purpose | None, zone: Zone
) -> None:
    from gateway.grants import covering_grant

    principal = Principal(
        "mallory", roles, customer_id, expires_at=datetime.now(UTC).timestamp() + 300
    )
    request = AccessRequest(
        principal=principal,
        action=Action.VIEW,
        camera=CameraRef("c1", "front"),
        zone=zone,
        purpose=purpose,
        justification="CASE-1 because",
    )
    decision = Authorizer(ENGINE, covering_grant).decide(request, ())  # no grants at all
    known = principal.known_roles
    if decision:
        # Without grants, only ownership, a legal request or break-glass can allow.
        assert decision.reason in ("owner", "legal_request", "break_glass")
        if decision.reason == "owner":
            assert Role.CUSTOMER in known and customer_id == "c1"
        elif decision.reason == "legal_request":
            assert Role.LEGAL in known and purpose == Purpose.LEGAL_REQUEST
        else:
            assert known & {Role.SUPPORT_LEAD, Role.TRUST_SAFETY} and purpose == Purpose.EMERGENCY
    if not known:
        assert not decision and decision.reason == "forbidden"


HOSTILE_ROLES = [
    'admin" || "1"=="1',
    "*",
    "-",
    "support_agent\x00",
    "SUPPORT_AGENT",
    " legal",
    "r.role",
]


def test_hostile_role_strings_in_a_token_grant_nothing_over_http(home: Live) -> None:
    grant(home, grantee="role:support_agent")
    headers = home.env.auth(
        "mallory",
        *HOSTILE_ROLES,
        **{"X-Access-Purpose": "customer_support", "X-Access-Justification": f"{TICKET} x"},
    )
    r = home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    event = assert_denied(db(home), r, SECRET, 403, "forbidden")
    assert event["roles"] == sorted(HOSTILE_ROLES)  # recorded as given, never interpreted
    admin = home.client.get("/v1/audit/events", headers=home.env.auth("mallory", *HOSTILE_ROLES))
    assert admin.status_code == 403


@pytest.mark.parametrize(
    "purpose",
    ["*", "-", 'legal_request" || "1"=="1', "LEGAL_REQUEST", "legal_request,", "own", "view"],
)
def test_hostile_purposes_are_refused_as_bad_requests_and_audited(home: Live, purpose: str) -> None:
    headers = home.env.auth(
        "lena",
        "legal",
        **{"X-Access-Purpose": purpose, "X-Access-Justification": "subpoena 2026-17"},
    )
    r = home.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    event = assert_denied(db(home), r, SECRET, 400, "bad_request")
    assert event["purpose"] == purpose[:64]
