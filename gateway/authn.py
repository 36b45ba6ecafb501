"""Authentication: an `Authorization: Bearer <JWT>` header becomes a Principal, or Unauthenticated.

Contract §3. Every check here is a refusal path, and every refusal raises Unauthenticated with
one of four short messages: callers learn that the token failed, never which check caught it
(the reason goes to the log instead). The order matters: cheap shape checks before any parsing,
header checks before any key lookup, signature before claims.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import jwt
import structlog
from jwt.types import Options

from gateway.devkeys import DEV_KID, load_or_create_dev_key
from gateway.errors import ConfigError, Unauthenticated
from gateway.jwtkeys import (
    ChainedKeys,
    JwksKeys,
    KeySource,
    StaticKeys,
    VerificationKey,
    is_valid_kid,
    load_public_key_pem,
    verification_key,
)
from gateway.settings import ASYMMETRIC_ALGORITHMS, Settings
from gateway.types import Principal, is_valid_id, is_valid_sub

log = structlog.get_logger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
MAX_LEEWAY_SECONDS = 30.0
# Header parameters that tell the verifier where to find a key (RFC 7515 §4.1.2-4.1.6): trusting
# them lets the token choose its own key. `crit` names extensions we would have to understand,
# and we understand none, so RFC 7515 §4.1.11 says reject.
FORBIDDEN_HEADER_PARAMS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
# A compact JWS: three base64url segments, the signature not empty (so never `alg: none`).
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)

MISSING = "An Authorization: Bearer token is required."
MALFORMED = "The Authorization header must carry exactly one Bearer token."
EXPIRED = "The bearer token has expired."
INVALID = "The bearer token is not valid."


def _refuse(reason: str, message: str = INVALID) -> NoReturn:
    log.info("authn.refused", reason=reason)
    raise Unauthenticated(message)


def bearer_token(authorization: str | None) -> str:
    """The token of a `Bearer <token>` header (scheme case-insensitive, RFC 9110 §11.1)."""
    if not authorization:
        _refuse("no authorization header", MISSING)
    if len(authorization) > MAX_TOKEN_BYTES + 64:  # before any splitting: bound the work
        _refuse("token too large")
    scheme, _, token = authorization.strip(" ").partition(" ")
    if scheme.lower() != "bearer":
        _refuse("not a bearer scheme", MALFORMED)
    if not token or " " in token or "," in token:  # two tokens, or two credentials
        _refuse("not exactly one token", MALFORMED)
    if len(token) > MAX_TOKEN_BYTES:
        _refuse("token too large")
    if COMPACT_JWS.fullmatch(token) is None:
        _refuse("not a compact JWS")
    return token


def claim_at(claims: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """(present, value) of a claim by name or dotted path (`realm_access.roles`)."""
    if path in claims:  # a name with dots in it, as some providers use, wins over a path
        return True, claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def principal_from_claims(
    claims: Mapping[str, Any], roles_claim: str = "roles", customer_claim: str = "customer_id"
) -> Principal:
    """The Principal named by verified claims, or Unauthenticated if any claim is malformed.

    Roles and the customer id are read from the configured claims (FOOTGW_OIDC_ROLES_CLAIM,
    FOOTGW_OIDC_CUSTOMER_CLAIM; `roles` and `customer_id` unless set).
    """
    sub = claims.get("sub")
    if not is_valid_sub(sub):
        _refuse("sub missing or malformed")
    _, roles = claim_at(claims, roles_claim)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        _refuse("roles not a list of strings")
    has_customer, customer_id = claim_at(claims, customer_claim)
    if has_customer and not (isinstance(customer_id, str) and is_valid_id(customer_id)):
        _refuse("customer_id malformed")
    exp = _number(claims, "exp")
    if exp is None:
        _refuse("exp missing")
    iat = _number(claims, "iat")
    # Unknown role strings are kept: Principal.known_roles drops them, so they grant nothing.
    return Principal(sub, frozenset(roles), customer_id, expires_at=exp, issued_at=iat)


def _check_header(header: Mapping[str, Any]) -> str | None:
    """Refuse headers that point at keys or demand extensions; return the kid, if any."""
    present = FORBIDDEN_HEADER_PARAMS & header.keys()
    if present:
        _refuse(f"forbidden header parameter {sorted(present)[0]}")
    if not isinstance(header.get("alg"), str):
        _refuse("alg missing")
    # cty "JWT" says the payload is itself a JWT (RFC 7519 §5.2, §7.2 step 8). We never unwrap
    # nested tokens, so reading such a payload as our claims would misread it: refuse instead.
    if str(header.get("cty", "")).upper() == "JWT":
        _refuse("nested JWT (cty JWT)")
    kid = header.get("kid")
    if kid is None:
        return None
    if not isinstance(kid, str) or not is_valid_kid(kid):
        _refuse("kid malformed")
    return kid


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python, and "123" is an int to PyJWT; a time claim is a JSON number,
    # and a finite one (Python's json reads NaN, Infinity and 400-digit integers).
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(f"{name} not a number")
    try:
        number = float(value)
    except OverflowError:
        _refuse(f"{name} out of range")
    if not math.isfinite(number):
        _refuse(f"{name} out of range")
    return number


class _VerifiedTokens:
    """A bounded LRU of verified tokens by sha256; an entry never outlives exp or `ttl`."""

    def __init__(self, size: int, ttl: float) -> None:
        self._size, self._ttl = size, ttl
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def get(self, digest: bytes, now: float) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, good_until = entry
        if now >= good_until:  # past exp (or the ttl): verify afresh, which decides
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return principal

    def put(self, digest: bytes, principal: Principal, now: float) -> None:
        # The ttl bounds how long a token keeps working after its key leaves the JWKS.
        good_until = min(principal.expires_at, now + self._ttl)
        if self._size <= 0 or good_until <= now:  # accepted within leeway: nothing to keep
            return
        self._entries[digest] = (principal, good_until)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class Authenticator:
    """Verifies bearer tokens against configured keys, algorithms, issuer and audience."""

    def __init__(
        self,
        keys: KeySource,
        *,
        algorithms: Iterable[str],
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = MAX_LEEWAY_SECONDS,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        cache_ttl: float = 60.0,
        roles_claim: str = "roles",
        customer_claim: str = "customer_id",
    ) -> None:
        # The list is fixed here, never read from a token. `none` and HMAC are dropped even if
        # asked for: no key source yields a key they could use, and we say so twice.
        self._algorithms = tuple(a for a in algorithms if a in ASYMMETRIC_ALGORITHMS)
        if not self._algorithms:
            raise ValueError("no asymmetric JWS algorithm configured")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = min(max(leeway, 0.0), MAX_LEEWAY_SECONDS)
        self._clock = clock
        self._cache = _VerifiedTokens(cache_size, cache_ttl)
        self._options = self._decode_options()
        self._claims = (roles_claim, customer_claim)

    @classmethod
    def from_settings(cls, settings: Settings, provider: KeySource | None = None) -> Authenticator:
        """The authenticator the settings describe (key file, JWKS URL, dev key, or the
        identity provider's JWKS through `provider`, its discovery: contract §15)."""
        algorithms = tuple(a for a in settings.jwt_algorithms if a in ASYMMETRIC_ALGORITHMS)
        if not algorithms:
            raise ConfigError("FOOTGW_JWT_ALGORITHMS", "names no asymmetric algorithm")
        return cls(
            provider or _key_sources(settings, algorithms),
            algorithms=algorithms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
            roles_claim=settings.roles_claim,
            customer_claim=settings.customer_claim,
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms a token may use, in configured order."""
        return self._algorithms

    async def authenticate(self, authorization: str | None) -> Principal:
        """The Principal for an Authorization header value; Unauthenticated for anything wrong."""
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(digest, self._clock())
        if cached is not None:
            return cached
        principal = await self._verify(token)
        self._cache.put(digest, principal, self._clock())
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            _refuse("header not decodable")
        kid = _check_header(header)
        key = await self._keys.key_for(kid)
        if key is None:
            _refuse("no key for kid")
        claims = self._decode(token, key)
        self._check_times(claims)
        return principal_from_claims(claims, *self._claims)

    def _decode(self, token: str, key: VerificationKey) -> dict[str, Any]:
        # Only algorithms both configured and fitting this key's type; PyJWT then refuses a
        # token whose header names any other (an RS256 token when only EdDSA is configured).
        algorithms = [a for a in self._algorithms if a in key.algorithms]
        if not algorithms:
            _refuse("no configured algorithm fits the key")
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=algorithms,
                options=self._options,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:  # only raised after the signature checked out
            _refuse("expired", EXPIRED)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # any other failure is a refusal
            _refuse(type(exc).__name__)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        # PyJWT checked these against the wall clock; check again against ours, which is what
        # the cache uses (and what tests control), so the two can never disagree in our favour.
        now, leeway = self._clock(), self._leeway
        exp = _number(claims, "exp")
        if exp is None:
            _refuse("exp missing")
        if exp <= now - leeway:
            _refuse("expired", EXPIRED)
        nbf, iat = _number(claims, "nbf"), _number(claims, "iat")
        if nbf is not None and nbf > now + leeway:
            _refuse("not yet valid")
        if iat is not None and iat > now + leeway:
            _refuse("issued in the future")

    def _decode_options(self) -> Options:
        require = ["exp", "sub"]
        require += ["iss"] if self._issuer is not None else []
        require += ["aud"] if self._audience is not None else []
        return {
            "verify_signature": True,
            "require": require,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_iss": True,
            "verify_aud": True,
            "enforce_minimum_key_length": True,
        }


def _key_sources(settings: Settings, algorithms: tuple[str, ...]) -> KeySource:
    sources: list[KeySource] = []
    if settings.dev_mode:  # first, and only for kid "dev": it never shadows a real key
        dev = verification_key(load_or_create_dev_key(settings.dev_key_file).public_key(), DEV_KID)
        _require_fit(dev, algorithms, "dev mode's EdDSA key")
        sources.append(StaticKeys({DEV_KID: dev}))
    if settings.jwt_public_key_file is not None:
        key = _pem_file_key(settings.jwt_public_key_file)
        _require_fit(key, algorithms, str(settings.jwt_public_key_file))
        sources.append(StaticKeys(any_kid=key))
    if settings.jwt_jwks_url is not None:
        sources.append(_jwks_keys(settings.jwt_jwks_url))
    if not sources:
        raise ConfigError(
            "FOOTGW_JWT_PUBLIC_KEY_FILE",
            "set it or FOOTGW_JWT_JWKS_URL (FOOTGW_DEV_MODE=1 for a local dev key)",
        )
    return sources[0] if len(sources) == 1 else ChainedKeys(*sources)


def _require_fit(key: VerificationKey, algorithms: tuple[str, ...], what: str) -> None:
    # Caught at start-up, not as a 401 on every request.
    if not set(key.algorithms) & set(algorithms):
        raise ConfigError(
            "FOOTGW_JWT_ALGORITHMS", f"none fits {what} (it verifies {', '.join(key.algorithms)})"
        )


def _pem_file_key(path: Path) -> VerificationKey:
    try:
        return load_public_key_pem(path.read_bytes())
    except OSError as exc:
        raise ConfigError("FOOTGW_JWT_PUBLIC_KEY_FILE", f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError("FOOTGW_JWT_PUBLIC_KEY_FILE", f"{path}: {exc}") from exc


def _jwks_keys(url: str) -> JwksKeys:
    try:
        return JwksKeys(url)
    except jwt.PyJWKClientError as exc:
        raise ConfigError("FOOTGW_JWT_JWKS_URL", str(exc)) from exc
