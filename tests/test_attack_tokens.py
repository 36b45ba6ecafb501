"""Token forgery and confusion over real HTTP, beyond tests/test_gateway_attacks.py's basic table.

Header parameters that point at keys, `kid` abuse, `crit`, nested and oversized tokens, issuer
and audience near-misses, and each required claim missing in turn. Every refusal is asserted
the same way: 401 `unauthenticated`, no footage byte, and an audit trace consistent with the
response (see tests.support.faults.assert_unauthenticated). The gateways here trust one EC
P-256 key (a PEM file) or a JWKS endpoint, with an issuer and an audience configured.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from tests.support.faults import assert_denied, assert_no_footage, assert_unauthenticated, trace
from tests.support.jwks import JwksServer, serve_jwks
from tests.support.server import Live, make_env, start_live
from tests.support.tokens import (
    Keypair,
    claims,
    hand_built,
    hmac_token,
    jwks,
    make_keypair,
    sign,
)

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
SECRET = b"NURSERY-CAM-BYTES-" * 2048
ISSUER, AUDIENCE = "https://idp.example", "footage-gateway"
KEY = make_keypair("ec", "k1")
ATTACKER = make_keypair("ec", "k1")  # same kid, different key


@pytest.fixture(scope="module")
def ec_live(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ec")
    env = make_env(
        root,
        {
            "FOOTGW_JWT_PUBLIC_KEY_FILE": str(KEY.write_public_pem(root)),
            "FOOTGW_JWT_ISSUER": ISSUER,
            "FOOTGW_JWT_AUDIENCE": AUDIENCE,
        },
    )
    env.put_clip("c1", "front", CLIP, SECRET)
    with start_live(env) as running:
        yield running


def good(**extra: Any) -> dict[str, Any]:
    return claims("alice", ("customer",), "c1", iss=ISSUER, aud=AUDIENCE, **extra)


def get(live: Live, token: str, path: str = PATH) -> httpx.Response:
    return live.client.get(path, headers={"Authorization": f"Bearer {token}"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_raw(header: dict[str, Any], payload: bytes, key: Keypair) -> str:
    """A validly signed compact JWS whose payload is any bytes (not necessarily JSON claims)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    signature = jwt.get_algorithm_by_name(header["alg"]).sign(signing_input.encode(), key.private)
    return f"{signing_input}.{_b64(signature)}"


def test_control_a_good_token_streams(ec_live: Live) -> None:
    r = get(ec_live, sign(good(), KEY))
    assert r.status_code == 200 and r.content == SECRET


# --- header parameters that would let the token choose its own key -------------------------------


def key_pointing_attacks(jku_url: str) -> dict[str, str]:
    evil = make_keypair("ec", "evil")
    return {
        # The classic: embed the attacker's public key and sign with its private half.
        "jwk: the attacker's own key": sign(good(), evil, headers={"jwk": evil.jwk()}),
        # Even with the real key's signature, a key-pointing header is refused outright.
        "jwk: the real key, really signed": sign(good(), KEY, headers={"jwk": KEY.jwk()}),
        "jku: the attacker's JWKS": sign(good(), evil, headers={"jku": jku_url}),
        "jku: really signed": sign(good(), KEY, headers={"jku": jku_url}),
        "x5u: the attacker's chain": sign(good(), evil, headers={"x5u": jku_url}),
        "x5c: a made-up chain": sign(good(), evil, headers={"x5c": [_b64(b"\x30\x82" * 40)]}),
        "x5c: really signed": sign(good(), KEY, headers={"x5c": ["MIIB"]}),
        "x5c: empty list": sign(good(), KEY, headers={"x5c": []}),
        "jwk: null": sign(good(), KEY, headers={"jwk": None}),
    }


def test_header_parameters_that_point_at_keys_are_refused_and_never_fetched(ec_live: Live) -> None:
    evil = make_keypair("ec", "evil")
    with serve_jwks(jwks(evil)) as attacker_jwks:
        for name, token in key_pointing_attacks(attacker_jwks.url).items():
            r = get(ec_live, token)
            assert r.status_code == 401, name
            assert_unauthenticated(ec_live.env.settings.database_url, r, SECRET)
        assert attacker_jwks.hits == 0  # the gateway never followed a URL from a token


# --- kid abuse -----------------------------------------------------------------------------------

HOSTILE_KIDS: dict[str, Any] = {
    "path traversal": "../../../../../../dev/null",
    "absolute path": "/etc/ssl/private/server.key",
    "sql-ish": "x' UNION SELECT 'key' --",
    "sql-ish, no spaces": "x'OR'1'='1",
    "very long": "k" * 10_000,
    "a number": 7,
    "a list": ["k1"],
    "an object": {"kid": "k1"},
    "true": True,
    "empty": "",
    "a NUL": "k1\x00",
    "a newline": "k1\nk2",
    "unicode look-alike": "ｋ１",
    "url": "http://127.0.0.1:1/key.pem",
}


@pytest.mark.parametrize("kind", HOSTILE_KIDS)
def test_hostile_kids_with_a_forged_signature_are_refused(ec_live: Live, kind: str) -> None:
    token = sign(good(), ATTACKER, headers={"kid": HOSTILE_KIDS[kind]})
    assert_unauthenticated(ec_live.env.settings.database_url, get(ec_live, token), SECRET)


def test_hmac_keyed_with_an_empty_file_named_by_kid_is_refused(ec_live: Live) -> None:
    # The kid-points-at-/dev/null trick: an HMAC secret of b"" if the kid were read as a path.
    for kid in ("/dev/null", "../../../../dev/null"):
        token = hmac_token(good(), b"", headers={"kid": kid})
        assert_unauthenticated(ec_live.env.settings.database_url, get(ec_live, token), SECRET)


MALFORMED_KIDS = ["very long", "a number", "a list", "an object", "true", "empty", "a NUL"]


@pytest.mark.parametrize("kind", MALFORMED_KIDS)
def test_a_malformed_kid_is_refused_even_under_the_real_signature(ec_live: Live, kind: str) -> None:
    token = sign(good(), KEY, headers={"kid": HOSTILE_KIDS[kind]})
    assert_unauthenticated(ec_live.env.settings.database_url, get(ec_live, token), SECRET)


def test_a_printable_kid_is_only_a_label_for_a_single_key_file(ec_live: Live) -> None:
    # With one PEM file the kid is not consulted at all: never a path, never a query. The real
    # key's signature still decides, so the same kid under another key is refused.
    kid = HOSTILE_KIDS["path traversal"]
    assert get(ec_live, sign(good(), KEY, headers={"kid": kid})).status_code == 200
    forged = get(ec_live, sign(good(), ATTACKER, headers={"kid": kid}))
    assert_unauthenticated(ec_live.env.settings.database_url, forged, SECRET)


@pytest.fixture(scope="module")
def jwks_live(tmp_path_factory: pytest.TempPathFactory):
    real = make_keypair("ed25519", "k1")
    with serve_jwks(jwks(real)) as server:
        root = tmp_path_factory.mktemp("jwks")
        env = make_env(root, {"FOOTGW_JWT_JWKS_URL": server.url, "FOOTGW_JWT_PUBLIC_KEY_FILE": ""})
        env.put_clip("c1", "front", CLIP, SECRET)
        with start_live(env) as running:
            running.jwks = server
            running.real_key = real
            yield running


def test_hostile_kids_against_a_jwks_never_match_and_never_flood_the_idp(jwks_live: Live) -> None:
    server: JwksServer = jwks_live.jwks  # type: ignore[attr-defined]
    real: Keypair = jwks_live.real_key  # type: ignore[attr-defined]
    assert get(jwks_live, sign(claims("alice", ("customer",), "c1"), real)).status_code == 200
    hits = server.hits
    printable = ["../k1", "k1/../k1", "K1", "k1'--", "x'OR'1'='1", "%6b1", "k1%00", "*", "k?"]
    for i, kid in enumerate(printable + [f"made-up-{n}" for n in range(40)]):
        token = sign(claims(f"mallory{i}", ("customer",), "c1"), real, headers={"kid": kid})
        r = get(jwks_live, token)
        assert_unauthenticated(jwks_live.env.settings.database_url, r, SECRET)
    # Unknown kids may trigger one refresh per rate-limit window, never one per token.
    assert server.hits - hits <= 1
    for kind in MALFORMED_KIDS:  # malformed kids are refused before any key lookup
        token = sign(claims("eve", ("customer",), "c1"), real, headers={"kid": HOSTILE_KIDS[kind]})
        assert get(jwks_live, token).status_code == 401
    assert server.hits - hits <= 1


# --- crit, nesting, size -------------------------------------------------------------------------


# Deeper than Python's recursion limit: json.loads raises RecursionError, not ValueError.
DEEP_HEADER = '{"alg":"ES256","x":' + "[" * 3000 + "]" * 3000 + "}"


def shape_attacks() -> dict[str, str]:
    inner = sign(good(), KEY)
    return {
        "crit exp": sign(good(), KEY, headers={"crit": ["exp"]}),
        "crit empty list": sign(good(), KEY, headers={"crit": []}),
        "crit a string": sign(good(), KEY, headers={"crit": "exp"}),
        "crit b64 false (unencoded payload)": sign(
            good(), KEY, headers={"crit": ["b64"], "b64": False}
        ),
        "crit an unknown extension": sign(
            good(), KEY, headers={"crit": ["http://example/ext"], "http://example/ext": 1}
        ),
        # Nested JWTs (RFC 7519 §5.2): the gateway never unwraps one, whoever signed which layer.
        "nested: attacker outside, real inside": signed_raw(
            {"alg": "ES256", "kid": "k1", "cty": "JWT"}, inner.encode(), ATTACKER
        ),
        "nested: real outside, payload a JWT": signed_raw(
            {"alg": "ES256", "kid": "k1", "cty": "JWT"}, inner.encode(), KEY
        ),
        "nested: cty JWT over plain claims": sign(good(), KEY, headers={"cty": "JWT"}),
        "nested: cty jwt, lower case": sign(good(), KEY, headers={"cty": "jwt"}),
        "payload a JWT without cty": signed_raw({"alg": "ES256", "kid": "k1"}, inner.encode(), KEY),
        "payload a JSON list": signed_raw({"alg": "ES256", "kid": "k1"}, b"[1,2]", KEY),
        "payload a JSON string": signed_raw({"alg": "ES256", "kid": "k1"}, b'"alice"', KEY),
        "header deeply nested": _b64(DEEP_HEADER.encode())
        + "."
        + _b64(json.dumps(good()).encode())
        + ".c2ln",
        "alg none, header deeply nested": hand_built({"alg": "none", "x": [[[[[[]]]]]]}, good()),
        "payload deeply nested, really signed": signed_raw(
            {"alg": "ES256", "kid": "k1"},
            (json.dumps(good())[:-1] + ',"x":' + "[" * 2500 + "]" * 2500 + "}").encode(),
            KEY,
        ),
        "payload with a duplicate sub": signed_raw(
            {"alg": "ES256", "kid": "k1"},
            json.dumps(good()).replace('"sub": "alice"', '"sub": "alice", "sub": 7').encode(),
            KEY,
        ),
        "just over 8 KiB": sign(good(pad="x" * 6200), KEY),
        "JWE-shaped (five segments)": sign(good(), KEY) + ".x.y",
        "a thousand dots": "a." * 1000 + "a",
    }


SHAPES = list(shape_attacks())


@pytest.mark.parametrize("name", SHAPES)
def test_crit_nested_and_odd_shaped_tokens_are_refused(ec_live: Live, name: str) -> None:
    token = shape_attacks()[name]
    assert_unauthenticated(ec_live.env.settings.database_url, get(ec_live, token), SECRET)


@pytest.mark.parametrize("size", [9_000, 64 * 1024, 1024 * 1024])
def test_oversized_authorization_headers_are_refused_quickly(ec_live: Live, size: int) -> None:
    token = sign(good(pad="x" * size), KEY)
    started = time.monotonic()
    try:
        r = get(ec_live, token)
    except httpx.RemoteProtocolError:
        return  # the server hung up on a header this large: no answer is a refusal too
    assert time.monotonic() - started < 5
    assert r.status_code in (400, 401, 413, 431), r.status_code
    assert_no_footage(r, SECRET)
    if r.status_code == 401:
        assert_unauthenticated(ec_live.env.settings.database_url, r, SECRET)


def test_many_authorization_headers_are_no_credential(ec_live: Live) -> None:
    token = sign(good(), KEY)
    r = ec_live.client.get(
        PATH, headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x.y.z")]
    )
    assert_unauthenticated(ec_live.env.settings.database_url, r, SECRET)


# --- issuer and audience near-misses -------------------------------------------------------------

ISSUER_NEAR_MISSES: dict[str, Any] = {
    "upper case": ISSUER.upper(),
    "trailing dot": ISSUER + ".",
    "explicit port": "https://idp.example:443",
    "http": "http://idp.example",
    "suffix domain": "https://idp.example.evil",
    "prefix path": "https://evil.example/https://idp.example",
    "leading space": " " + ISSUER,
    "trailing NUL": ISSUER + "\x00",
    "cyrillic i": "https://іdp.example",
    "fragment": ISSUER + "#",
    "query": ISSUER + "?",
    "a list holding it": [ISSUER],
    "an object": {"iss": ISSUER},
    "a number": 1,
    "null": None,
}


@pytest.mark.parametrize("name", ISSUER_NEAR_MISSES)
def test_issuer_near_misses_are_refused(ec_live: Live, name: str) -> None:
    payload = {**good(), "iss": ISSUER_NEAR_MISSES[name]}
    if payload["iss"] is None:
        del payload["iss"]
    assert_unauthenticated(
        ec_live.env.settings.database_url, get(ec_live, sign(payload, KEY)), SECRET
    )


AUDIENCE_NEAR_MISSES: dict[str, Any] = {
    "trailing space": AUDIENCE + " ",
    "other case": AUDIENCE.title(),
    "longer": AUDIENCE + "-admin",
    "a prefix": AUDIENCE[:-1],
    "a list without it": ["another-service"],
    "an empty list": [],
    "a number": 3,
}


@pytest.mark.parametrize("name", AUDIENCE_NEAR_MISSES)
def test_audience_near_misses_are_refused(ec_live: Live, name: str) -> None:
    payload = {**good(), "aud": AUDIENCE_NEAR_MISSES[name]}
    assert_unauthenticated(
        ec_live.env.settings.database_url, get(ec_live, sign(payload, KEY)), SECRET
    )


def test_an_audience_list_that_holds_ours_is_accepted(ec_live: Live) -> None:
    # RFC 7519 §4.1.3: aud may be a list; the token is for us if we are in it.
    r = get(ec_live, sign({**good(), "aud": ["another-service", AUDIENCE]}, KEY))
    assert r.status_code == 200 and r.content == SECRET


# --- each required claim missing, one at a time --------------------------------------------------


@pytest.mark.parametrize("claim", ["sub", "roles", "exp", "iss", "aud"])
def test_each_required_claim_missing_is_refused(ec_live: Live, claim: str) -> None:
    payload = {k: v for k, v in good().items() if k != claim}
    assert_unauthenticated(
        ec_live.env.settings.database_url, get(ec_live, sign(payload, KEY)), SECRET
    )


def test_iat_is_optional(ec_live: Live) -> None:
    payload = {k: v for k, v in good().items() if k != "iat"}
    assert get(ec_live, sign(payload, KEY)).status_code == 200


def test_a_customer_token_without_customer_id_owns_nothing_and_is_audited(ec_live: Live) -> None:
    # Authenticated (the claim is optional for staff), so the denial is a recorded decision.
    payload = {k: v for k, v in good().items() if k != "customer_id"}
    r = get(ec_live, sign(payload, KEY))
    event = assert_denied(ec_live.env.settings.database_url, r, SECRET, 403, "not_owner")
    assert event["principal"] == "alice" and event["customer_id"] == "c1"


def test_refusals_never_write_an_event_for_non_footage_endpoints(ec_live: Live) -> None:
    # Administrative routes are not footage requests: a 401 there leaves nothing at all.
    token = sign(good(), ATTACKER)
    for method, path in (
        ("GET", "/v1/grants"),
        ("POST", "/v1/grants"),
        ("GET", "/v1/audit/events"),
        ("POST", "/v1/principals/alice/suspend"),
        ("PUT", "/v1/cameras/c1/front"),
    ):
        r = ec_live.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (method, path)
        assert trace(ec_live.env.settings.database_url, r.headers["x-request-id"]) == []


def test_a_refused_footage_request_is_one_anonymous_recorded_denial(ec_live: Live) -> None:
    # Contract §5/§7: every footage request, allowed or denied, leaves one decision; a caller
    # who cannot be authenticated is recorded with no principal (and cannot pick one).
    r = get(ec_live, sign({**good(), "sub": "admin"}, ATTACKER))
    assert r.status_code == 401 and "x-audit-event-id" in r.headers
    (event,) = trace(ec_live.env.settings.database_url, r.headers["x-request-id"])
    assert event["event_id"] == r.headers["x-audit-event-id"]
    assert (event["type"], event["decision"], event["status"]) == ("access.decision", "deny", 401)
    assert event["principal"] is None and event["roles"] is None
    assert (event["customer_id"], event["camera_id"], event["clip_id"]) == ("c1", "front", CLIP)
