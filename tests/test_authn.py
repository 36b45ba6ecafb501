"""gateway.authn: tokens in, Principals or Unauthenticated out (unit level, no HTTP)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.authn import (
    EXPIRED,
    INVALID,
    MALFORMED,
    MAX_TOKEN_BYTES,
    MISSING,
    Authenticator,
    principal_from_claims,
)
from gateway.devkeys import mint_dev_token
from gateway.errors import ConfigError, Unauthenticated
from gateway.jwtkeys import JwksKeys, KeySource, StaticKeys, VerificationKey, load_public_key_pem
from gateway.settings import DEFAULT_ALGORITHMS, load_settings
from gateway.types import Role
from tests.support.jwks import JwksServer, serve_jwks
from tests.support.tokens import (
    KINDS,
    Keypair,
    bearer,
    claims,
    hand_built,
    hmac_token,
    jwks,
    make_keypair,
    sign,
    tamper,
)

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.com/"
AUDIENCE = "footage-gateway"


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class CountingKeys:
    """A key source that counts lookups, to see when the verified-token cache answered."""

    def __init__(self, inner: KeySource) -> None:
        self.inner, self.lookups = inner, 0

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        self.lookups += 1
        return await self.inner.key_for(kid)


@pytest.fixture(scope="module", params=KINDS)
def keypair(request: pytest.FixtureRequest) -> Keypair:
    return make_keypair(request.param)


@pytest.fixture(scope="module")
def rsa_key() -> Keypair:
    return make_keypair("rsa")


def static(key: Keypair, **kwargs: Any) -> Authenticator:
    kwargs.setdefault("algorithms", DEFAULT_ALGORITHMS)
    return Authenticator(StaticKeys(any_kid=load_public_key_pem(key.public_pem())), **kwargs)


def good(**extra: Any) -> dict[str, Any]:
    """Claims valid for an authenticator expecting ISSUER and AUDIENCE; `extra` overrides."""
    return claims(**{"iss": ISSUER, "aud": AUDIENCE, **extra})


async def refused(auth: Authenticator, header: str | None, message: str = INVALID) -> None:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(header)
    assert caught.value.message == message
    assert caught.value.status == 401


# --- the happy path ------------------------------------------------------------------------


async def test_valid_token_per_key_type(keypair: Keypair) -> None:
    auth = static(keypair, issuer=ISSUER, audience=AUDIENCE)
    payload = good(roles=["customer", "made_up_role"])
    principal = await auth.authenticate(bearer(sign(payload, keypair)))
    assert principal.sub == "alice"
    assert principal.customer_id == "cust-1"
    assert principal.roles == {"customer", "made_up_role"}
    assert principal.known_roles == {Role.CUSTOMER}  # the unknown role grants nothing
    assert principal.expires_at == payload["exp"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_is_case_insensitive(rsa_key: Keypair, scheme: str) -> None:
    token = sign(claims(), rsa_key)
    assert (await static(rsa_key).authenticate(f"{scheme} {token}")).sub == "alice"


async def test_staff_token_without_customer_id(rsa_key: Keypair) -> None:
    token = sign(claims("bob", ["support_agent"], customer_id=None), rsa_key)
    principal = await static(rsa_key).authenticate(bearer(token))
    assert principal.customer_id is None
    assert principal.known_roles == {Role.SUPPORT_AGENT}


async def test_token_just_under_the_size_limit_is_accepted(rsa_key: Keypair) -> None:
    token = sign(claims(pad="x"), rsa_key)
    room = MAX_TOKEN_BYTES - len(token)
    token = sign(claims(pad="x" * (room * 3 // 4 - 8)), rsa_key)
    assert MAX_TOKEN_BYTES - 64 < len(token) <= MAX_TOKEN_BYTES
    assert (await static(rsa_key).authenticate(bearer(token))).sub == "alice"


async def test_expired_within_leeway_is_accepted(rsa_key: Keypair) -> None:
    token = sign(claims(ttl=-10), rsa_key)
    assert (await static(rsa_key, leeway=30).authenticate(bearer(token))).sub == "alice"


async def test_leeway_is_capped_at_30_seconds(rsa_key: Keypair) -> None:
    await refused(static(rsa_key, leeway=3600), bearer(sign(claims(ttl=-60), rsa_key)), EXPIRED)


# --- attacks and malformed tokens: every one is a 401 ---------------------------------------


def _attacks(key: Keypair) -> dict[str, str]:
    """Header values that must all be refused by an authenticator expecting ISSUER/AUDIENCE."""
    pem = key.public_pem()
    base = good()
    token = sign(base, key)
    return {
        "alg none, empty signature": bearer(hand_built({"alg": "none", "typ": "JWT"}, base)),
        "alg none, junk signature": bearer(hand_built({"alg": "none"}, base, b"junk")),
        "alg None spelled oddly": bearer(hand_built({"alg": "None"}, base, b"junk")),
        "alg missing": bearer(hand_built({"typ": "JWT"}, base, b"junk")),
        "HS256 keyed with the public PEM": bearer(hmac_token(base, pem)),
        "HS256 keyed with the PEM, with kid": bearer(
            hmac_token(base, pem, headers={"kid": key.kid})
        ),
        "HS512 keyed with the public PEM": bearer(hmac_token(base, pem, "HS512")),
        "expired": bearer(sign(good(ttl=-120), key)),
        "exp missing": bearer(sign(good(exp=None), key)),
        "exp enormous": bearer(sign(good(exp=10**400), key)),
        "exp NaN": bearer(sign(good(exp=float("nan")), key)),
        "exp Infinity": bearer(sign(good(exp=float("inf")), key)),
        "exp a string": bearer(sign(good(exp=str(int(time.time()) + 300)), key)),
        "nbf in the future": bearer(sign(good(nbf=int(time.time()) + 600), key)),
        "iat in the future": bearer(sign(good(iat=int(time.time()) + 600), key)),
        "wrong aud": bearer(sign(good(aud="another-service"), key)),
        "aud missing": bearer(sign(good(aud=None), key)),
        "wrong iss": bearer(sign(good(iss="https://evil.example.com/"), key)),
        "iss missing": bearer(sign(good(iss=None), key)),
        "iss without trailing slash": bearer(sign(good(iss=ISSUER.rstrip("/")), key)),
        "iss in another case": bearer(sign(good(iss=ISSUER.upper()), key)),
        "iss with extra slash": bearer(sign(good(iss=ISSUER + "/"), key)),
        "signature byte flipped": bearer(tamper(token)),
        "signed by another key": bearer(sign(base, make_keypair(key.kind, fresh=True), headers={})),
        "payload swapped": bearer(_swap_payload(token, sign(good(roles=["admin"]), key))),
        "over 8 KiB": bearer(sign(good(pad="x" * MAX_TOKEN_BYTES), key)),
        "crit header": bearer(sign(base, key, headers={"crit": ["exp"]})),
        "crit b64": bearer(sign(base, key, headers={"crit": ["b64"], "b64": True})),
        "jku header": bearer(sign(base, key, headers={"jku": "https://evil.example.com/k"})),
        "x5u header": bearer(sign(base, key, headers={"x5u": "https://evil.example.com/c"})),
        "jwk header": bearer(sign(base, key, headers={"jwk": key.jwk()})),
        "x5c header": bearer(sign(base, key, headers={"x5c": ["MIIB"]})),
        "kid with a control character": bearer(sign(base, key, headers={"kid": "k\x00"})),
        "kid with a space": bearer(sign(base, key, headers={"kid": "a b"})),
        "kid not a string": bearer(sign(base, key, headers={"kid": 7})),
        "kid too long": bearer(sign(base, key, headers={"kid": "k" * 200})),
        "roles a string": bearer(sign(good(roles="admin"), key)),
        "roles with a number": bearer(sign(good(roles=["customer", 1]), key)),
        "roles missing": bearer(sign(good(roles=None), key)),
        "sub missing": bearer(sign(good(sub=None), key)),
        "sub empty": bearer(sign(good(sub=""), key)),
        "sub blank": bearer(sign(good(sub="   "), key)),
        "sub a number": bearer(sign(good(sub=42), key)),
        "sub too long": bearer(sign(good(sub="s" * 257), key)),
        "sub with a newline": bearer(sign(good(sub="alice\nadmin"), key)),
        "customer_id a path": bearer(sign(good(customer_id="../cust-2"), key)),
        "customer_id empty": bearer(sign(good(customer_id=""), key)),
        "customer_id too long": bearer(sign(good(customer_id="c" * 65), key)),
        "customer_id a number": bearer(sign(good(customer_id=12), key)),
        "customer_id null": bearer(sign({**good(), "customer_id": None}, key)),
        "payload not JSON": f"Bearer {token.split('.')[0]}.bm90IGpzb24.{token.split('.')[2]}",
        "header not JSON": f"Bearer bm90IGpzb24.{token.split('.', 1)[1]}",
        "garbage": "Bearer a.b.c",
        "JWE-shaped": f"Bearer {token}.{token.split('.')[1]}.x",
    }


def _swap_payload(token: str, other: str) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{other.split('.')[1]}.{signature}"


async def test_attacks_are_refused(keypair: Keypair) -> None:
    auth = static(keypair, issuer=ISSUER, audience=AUDIENCE)
    assert (await auth.authenticate(bearer(sign(good(), keypair)))).sub == "alice"  # control
    for name, header in _attacks(keypair).items():
        with pytest.raises(Unauthenticated) as caught:
            await auth.authenticate(header)
        assert caught.value.message in (INVALID, EXPIRED), name


async def test_expired_says_expired(rsa_key: Keypair) -> None:
    await refused(static(rsa_key), bearer(sign(claims(ttl=-120), rsa_key)), EXPIRED)


async def test_a_forged_expired_token_does_not_say_expired(rsa_key: Keypair) -> None:
    # "expired" is only said once the signature has checked out.
    forged = tamper(sign(claims(ttl=-120), rsa_key))
    await refused(static(rsa_key), bearer(forged), INVALID)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, MISSING),
        ("", MISSING),
        ("Basic YWxpY2U6c2VjcmV0", MALFORMED),
        ("Token abc.def.ghi", MALFORMED),
        ("Bearer", MALFORMED),
        ("Bearer ", MALFORMED),
        ("Bearer  {t}", MALFORMED),
        ("{t}", MALFORMED),
        ("Bearer {t} {t}", MALFORMED),
        ("Bearer {t}, Bearer {t}", MALFORMED),
        ("Bearer {t},{t}", MALFORMED),
        ("Bearer\t{t}", MALFORMED),
    ],
)
async def test_header_shape(rsa_key: Keypair, header: str | None, message: str) -> None:
    value = header.replace("{t}", sign(claims(), rsa_key)) if header is not None else None
    await refused(static(rsa_key), value, message)


async def test_oversized_header_is_refused_before_parsing(
    rsa_key: Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parsed a token over the size limit")

    monkeypatch.setattr("jwt.get_unverified_header", explode)
    monkeypatch.setattr("jwt.decode", explode)
    await refused(static(rsa_key), bearer("a" * (MAX_TOKEN_BYTES + 1)))
    await refused(static(rsa_key), bearer("a." * 100_000 + "a"))


@pytest.mark.parametrize(
    ("token_alg", "configured"),
    [
        ("RS256", ("EdDSA",)),
        ("RS256", ("ES256", "EdDSA")),
        ("PS256", ("RS256",)),
        ("RS512", ("RS256",)),
    ],
)
async def test_algorithm_not_configured(
    rsa_key: Keypair, token_alg: str, configured: tuple[str, ...]
) -> None:
    auth = static(rsa_key, algorithms=configured)
    await refused(auth, bearer(sign(claims(), rsa_key, alg=token_alg)))


async def test_configured_alternative_rsa_algorithm_is_accepted(rsa_key: Keypair) -> None:
    auth = static(rsa_key, algorithms=("PS256",))
    assert (await auth.authenticate(bearer(sign(claims(), rsa_key, alg="PS256")))).sub == "alice"


def test_hmac_and_none_are_never_configured(rsa_key: Keypair) -> None:
    assert static(rsa_key, algorithms=("HS256", "none", "EdDSA")).algorithms == ("EdDSA",)
    with pytest.raises(ValueError, match="asymmetric"):
        static(rsa_key, algorithms=("HS256", "none"))


async def test_hs256_with_pem_even_when_hs256_is_asked_for(rsa_key: Keypair) -> None:
    auth = static(rsa_key, algorithms=("HS256", "RS256"))
    await refused(auth, bearer(hmac_token(claims(), rsa_key.public_pem())))


def test_principal_from_claims_refuses_missing_exp() -> None:
    with pytest.raises(Unauthenticated):
        principal_from_claims({"sub": "a", "roles": []})
    assert principal_from_claims({"sub": "a", "roles": [], "exp": 5}).expires_at == 5.0


# --- the verified-token cache ----------------------------------------------------------------


async def test_cache_answers_repeat_tokens(rsa_key: Keypair) -> None:
    keys = CountingKeys(StaticKeys(any_kid=load_public_key_pem(rsa_key.public_pem())))
    auth = Authenticator(keys, algorithms=DEFAULT_ALGORITHMS)
    header = bearer(sign(claims(), rsa_key))
    first, second = await auth.authenticate(header), await auth.authenticate(header)
    assert first == second
    assert keys.lookups == 1


async def test_cached_token_is_refused_after_exp(rsa_key: Keypair) -> None:
    clock = Clock()
    auth = static(rsa_key, clock=clock, leeway=0)
    header = bearer(sign(claims(ttl=5, now=clock.now), rsa_key))
    assert (await auth.authenticate(header)).sub == "alice"  # verified and cached
    clock.now += 10  # the wall clock still says valid: only our clock moved
    await refused(auth, header, EXPIRED)


async def test_cache_entries_age_out(rsa_key: Keypair) -> None:
    clock = Clock()
    keys = CountingKeys(StaticKeys(any_kid=load_public_key_pem(rsa_key.public_pem())))
    auth = Authenticator(keys, algorithms=DEFAULT_ALGORITHMS, clock=clock, cache_ttl=60)
    header = bearer(sign(claims(ttl=3600, now=clock.now), rsa_key))
    await auth.authenticate(header)
    clock.now += 59
    await auth.authenticate(header)
    assert keys.lookups == 1
    clock.now += 2  # past the ttl: verified afresh, so a withdrawn key would now be noticed
    await auth.authenticate(header)
    assert keys.lookups == 2


async def test_cache_is_bounded(rsa_key: Keypair) -> None:
    keys = CountingKeys(StaticKeys(any_kid=load_public_key_pem(rsa_key.public_pem())))
    auth = Authenticator(keys, algorithms=DEFAULT_ALGORITHMS, cache_size=2)
    headers = [bearer(sign(claims(f"user{i}"), rsa_key)) for i in range(3)]
    for header in headers:
        await auth.authenticate(header)
    await auth.authenticate(headers[2])  # still cached
    assert keys.lookups == 3
    await auth.authenticate(headers[0])  # evicted, so verified again
    assert keys.lookups == 4


async def test_refusals_are_not_cached(rsa_key: Keypair) -> None:
    clock = Clock(time.time() - 100)  # our clock runs behind the wall clock PyJWT uses
    auth = static(rsa_key, clock=clock, leeway=0)
    header = bearer(sign(claims(ttl=3600), rsa_key))
    await refused(auth, header)  # issued in the future, by our clock
    clock.now += 100
    assert (await auth.authenticate(header)).sub == "alice"


# --- JWKS, against a real HTTP server ---------------------------------------------------------


@pytest.fixture
def ed_key() -> Keypair:
    return make_keypair("ed25519", "key-1")


@pytest.fixture
def server(ed_key: Keypair) -> Iterator[JwksServer]:
    with serve_jwks(jwks(ed_key)) as running:
        yield running


def jwks_auth(server: JwksServer, clock: Clock, **kwargs: Any) -> Authenticator:
    # Long enough that a fetch from a busy machine is never cut short: a fetch that times out
    # still reaches the endpoint later, and `hits` would then be read too early. The tests of
    # a hanging endpoint pass their own timeout.
    kwargs.setdefault("fetch_timeout", 30)
    keys = JwksKeys(server.url, clock=clock, **kwargs)
    # The token cache is off so that every call really asks the key source.
    return Authenticator(keys, algorithms=DEFAULT_ALGORITHMS, cache_size=0)


async def test_jwks_token_is_accepted(server: JwksServer, ed_key: Keypair) -> None:
    auth = jwks_auth(server, Clock())
    assert (await auth.authenticate(bearer(sign(claims(), ed_key)))).sub == "alice"
    assert (await auth.authenticate(bearer(sign(claims("bob"), ed_key)))).sub == "bob"
    assert server.hits == 1


async def test_concurrent_first_requests_fetch_once(server: JwksServer, ed_key: Keypair) -> None:
    auth = jwks_auth(server, Clock())
    subs: list[str] = []

    async def one(i: int) -> None:
        subs.append((await auth.authenticate(bearer(sign(claims(f"u{i}"), ed_key)))).sub)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    assert len(subs) == 10
    assert server.hits == 1


async def test_jwks_key_rotation(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    new_key = make_keypair("ec", "key-2")
    server.document = jwks(ed_key, new_key)
    clock.now += 11  # past the refresh rate limit
    assert (await auth.authenticate(bearer(sign(claims("bob"), new_key)))).sub == "bob"
    assert server.hits == 2


async def test_unknown_kid_storm_is_rate_limited(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    clock.now += 11
    for i in range(20):
        stranger = make_keypair("ed25519", f"made-up-{i}")
        await refused(auth, bearer(sign(claims(), stranger)))
    assert server.hits == 2  # the first miss refreshed; the next 19 did not
    clock.now += 11
    await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "another"))))
    assert server.hits == 3


async def test_removed_key_stops_working_after_refresh(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    server.document = jwks(make_keypair("ed25519", "key-2"))
    clock.now += 301  # the set is due for its periodic refresh
    await refused(auth, bearer(sign(claims(), ed_key)))


async def test_jwks_failing_keeps_last_good_keys(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    server.mode = "fail"
    clock.now += 301  # due for refresh: the refresh fails, the old set stays
    assert (await auth.authenticate(bearer(sign(claims("bob"), ed_key)))).sub == "bob"
    assert server.hits == 2
    await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "unknown"))))
    clock.now += 3600  # the last good set is now too old to trust
    await refused(auth, bearer(sign(claims("carol"), ed_key)))


async def test_jwks_unreachable_keeps_last_good_keys(ed_key: Keypair) -> None:
    clock = Clock()
    with serve_jwks(jwks(ed_key)) as server:
        auth = jwks_auth(server, clock)
        await auth.authenticate(bearer(sign(claims(), ed_key)))
    # The server is gone: connections are refused.
    clock.now += 301
    assert (await auth.authenticate(bearer(sign(claims("bob"), ed_key)))).sub == "bob"
    await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "new-kid"))))


async def test_empty_jwks_does_not_replace_good_keys(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    server.document = {"keys": []}
    clock.now += 301
    assert (await auth.authenticate(bearer(sign(claims("bob"), ed_key)))).sub == "bob"


async def test_hanging_jwks_does_not_block_the_event_loop(server: JwksServer) -> None:
    server.mode = "hang"
    # A fetch timeout longer than the test: the hang ends when the test releases it.
    auth = jwks_auth(server, Clock(), fetch_timeout=30)
    order: list[str] = []

    async def meanwhile() -> None:
        assert await anyio.to_thread.run_sync(server.hanging.wait, 10)
        order.append("the loop ran while the fetch hung")  # a blocked loop runs this after
        server.release.set()  # the handler returns with no answer: the fetch fails

    async with anyio.create_task_group() as tg:
        tg.start_soon(meanwhile)
        await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "key-1"))))
        order.append("refused")
    assert order == ["the loop ran while the fetch hung", "refused"]


async def test_hanging_jwks_is_refused_after_the_fetch_timeout(server: JwksServer) -> None:
    server.mode = "hang"
    auth = jwks_auth(server, Clock(), fetch_timeout=0.5)
    started = time.monotonic()
    await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "key-1"))))
    assert server.hanging.is_set() and not server.release.is_set()
    assert time.monotonic() - started < 3.0  # its own timeout, not the server's 30 s hang


async def test_hanging_refresh_serves_known_keys(server: JwksServer, ed_key: Keypair) -> None:
    clock = Clock()
    auth = jwks_auth(server, clock, fetch_timeout=0.5)
    await auth.authenticate(bearer(sign(claims(), ed_key)))
    server.mode = "hang"
    clock.now += 301  # due for refresh, and the refresh will hang
    finished: list[str] = []

    async def unknown_kid() -> None:
        await refused(auth, bearer(sign(claims(), make_keypair("ed25519", "new"))))
        finished.append("unknown kid")

    async def known_kid() -> None:
        assert (await auth.authenticate(bearer(sign(claims("bob"), ed_key)))).sub == "bob"
        finished.append("known kid")

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(unknown_kid)
        await anyio.wait_all_tasks_blocked()  # its refresh is now in flight, holding the lock
        tg.start_soon(known_kid)
    assert finished == ["known kid", "unknown kid"]  # the known kid did not wait for the hang
    assert time.monotonic() - started < 3.0


async def test_jwks_oct_key_cannot_verify_hmac(server: JwksServer, ed_key: Keypair) -> None:
    secret = b"a-shared-secret-of-decent-length!"
    oct_key = {"kty": "oct", "kid": "hmac", "k": "YS1zaGFyZWQtc2VjcmV0LW9mLWRlY2VudC1sZW5ndGgh"}
    server.document = {"keys": [oct_key, ed_key.jwk()]}
    auth = jwks_auth(server, Clock())
    await refused(auth, bearer(hmac_token(claims(), secret, headers={"kid": "hmac"})))


async def test_jwks_entries_we_cannot_trust_are_skipped(server: JwksServer) -> None:
    enc = make_keypair("ed25519", "enc")
    wrong_alg = make_keypair("rsa", "rs384-only")
    server.document = {
        "keys": [enc.jwk(use="enc"), wrong_alg.jwk(alg="RS384"), {"kid": "junk", "kty": "RSA"}, "x"]
    }
    auth = jwks_auth(server, Clock())
    await refused(auth, bearer(sign(claims(), enc)))
    await refused(auth, bearer(sign(claims(), wrong_alg, alg="RS256")))  # the JWK says RS384


async def test_jwks_token_without_kid_is_refused(server: JwksServer, ed_key: Keypair) -> None:
    await refused(jwks_auth(server, Clock()), bearer(sign(claims(), ed_key, headers={"kid": None})))


# --- from_settings -------------------------------------------------------------------------


def settings_for(tmp_path: Path, **env: str) -> Any:
    return load_settings(
        {"FOOTGW_DATA_DIR": str(tmp_path), **{f"FOOTGW_{k}": v for k, v in env.items()}}
    )


async def test_from_settings_with_a_key_file(tmp_path: Path, keypair: Keypair) -> None:
    path = keypair.write_public_pem(tmp_path)
    auth = Authenticator.from_settings(
        settings_for(
            tmp_path, JWT_PUBLIC_KEY_FILE=str(path), JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE
        )
    )
    assert (await auth.authenticate(bearer(sign(good(), keypair)))).sub == "alice"
    await refused(auth, bearer(sign(claims(), keypair)))  # no iss/aud


async def test_from_settings_dev_mode(tmp_path: Path) -> None:
    auth = Authenticator.from_settings(settings_for(tmp_path, DEV_MODE="1"))
    token = mint_dev_token(tmp_path / "dev-jwt-key.pem", sub="dana", roles=["admin"])
    assert (await auth.authenticate(bearer(token))).known_roles == {Role.ADMIN}


async def test_dev_tokens_are_refused_outside_dev_mode(tmp_path: Path, rsa_key: Keypair) -> None:
    token = mint_dev_token(tmp_path / "dev-jwt-key.pem", sub="dana", roles=["admin"])
    path = rsa_key.write_public_pem(tmp_path)
    auth = Authenticator.from_settings(settings_for(tmp_path, JWT_PUBLIC_KEY_FILE=str(path)))
    await refused(auth, bearer(token))


def test_dev_mode_beside_a_real_key_is_refused(tmp_path: Path, rsa_key: Keypair) -> None:
    """Dev mode next to a real key would accept forged dev tokens in a deployment (contract §2)."""
    path = rsa_key.write_public_pem(tmp_path)
    with pytest.raises(ConfigError, match="FOOTGW_DEV_MODE"):
        settings_for(tmp_path, DEV_MODE="1", JWT_PUBLIC_KEY_FILE=str(path))


async def test_from_settings_jwks(server: JwksServer, ed_key: Keypair, tmp_path: Path) -> None:
    auth = Authenticator.from_settings(settings_for(tmp_path, JWT_JWKS_URL=server.url))
    assert (await auth.authenticate(bearer(sign(claims(), ed_key)))).sub == "alice"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({}, "FOOTGW_JWT_PUBLIC_KEY_FILE"),
        ({"JWT_JWKS_URL": "file:///etc/passwd"}, "FOOTGW_JWT_JWKS_URL"),
        ({"JWT_PUBLIC_KEY_FILE": "{rsa}", "JWT_ALGORITHMS": "EdDSA"}, "FOOTGW_JWT_ALGORITHMS"),
        ({"JWT_PUBLIC_KEY_FILE": "{junk}"}, "FOOTGW_JWT_PUBLIC_KEY_FILE"),
        ({"DEV_MODE": "1", "JWT_ALGORITHMS": "HS256"}, "FOOTGW_JWT_ALGORITHMS"),
        ({"DEV_MODE": "1", "JWT_ALGORITHMS": "RS256"}, "FOOTGW_JWT_ALGORITHMS"),
    ],
)
def test_from_settings_refuses_bad_configuration(
    tmp_path: Path, rsa_key: Keypair, env: dict[str, str], key: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    paths: dict[str, Callable[[], str]] = {
        "{rsa}": lambda: str(rsa_key.write_public_pem(tmp_path)),
        "{junk}": lambda: str(junk),
    }
    resolved = {k: paths[v]() if v in paths else v for k, v in env.items()}
    with pytest.raises(ConfigError) as caught:
        Authenticator.from_settings(settings_for(tmp_path, **resolved))
    assert caught.value.key == key


# --- properties: whatever arrives, the answer is a Principal or Unauthenticated (never a 500) ---

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
_claim_names = st.sampled_from(["sub", "roles", "customer_id", "exp", "iat", "nbf", "iss", "aud"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.text(max_size=200))
def test_any_header_text_is_refused_cleanly(header: str) -> None:
    auth = static(_ED_KEY)
    with pytest.raises(Unauthenticated):
        anyio.run(auth.authenticate, header)


@settings(max_examples=150, deadline=None)
@given(
    overrides=st.dictionaries(_claim_names, _json, max_size=4),
    extra_header=st.dictionaries(
        st.sampled_from(["kid", "typ", "cty", "b64", "zip", "x5t"]), _json, max_size=2
    ),
)
def test_any_signed_claims_give_a_principal_or_refusal(
    overrides: dict[str, Any], extra_header: dict[str, Any]
) -> None:
    payload = {**claims(), **overrides}
    auth = static(_ED_KEY)
    try:
        principal = anyio.run(
            auth.authenticate, bearer(sign(payload, _ED_KEY, headers=extra_header))
        )
    except Unauthenticated:
        return
    assert isinstance(principal.sub, str) and principal.sub
    assert all(isinstance(r, str) for r in principal.roles)


_ED_KEY = make_keypair("ed25519", "prop-key")
