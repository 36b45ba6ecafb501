"""Where token verification keys come from: a PEM file, a JWKS endpoint, or dev mode's key.

A key source answers one question, "which public key verifies a token with this `kid`?", and
each key says which JWS algorithms its type can verify. Only public RSA, EC and EdDSA keys are
ever returned, so an HMAC algorithm can never find a key (the classic RS256→HS256 confusion,
where the public key PEM becomes an HMAC secret, has nothing to work with).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import jwt
import structlog
from anyio import to_thread
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

log = structlog.get_logger(__name__)

PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# An EC key verifies exactly one algorithm: the one for its curve (RFC 7518 §3.4).
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048
MAX_JWKS_KEYS = 64
# A kid is an opaque label, but it reaches logs and lookups: keep it short and printable.
KID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)


def is_valid_kid(kid: object) -> bool:
    """True for a `kid` that is a short string of printable ASCII."""
    return isinstance(kid, str) and KID_PATTERN.fullmatch(kid) is not None


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the JWS algorithms its type (or its JWK `alg`) allows."""

    key: PublicKey
    algorithms: tuple[str, ...]
    kid: str | None = None


def algorithms_for(key: object) -> tuple[str, ...]:
    """The JWS algorithms a public key can verify; empty for anything else (never HMAC)."""
    if isinstance(key, RSAPublicKey):
        # Short RSA keys are factorable; refusing them here keeps them out of every source.
        return RSA_ALGORITHMS if key.key_size >= MIN_RSA_BITS else ()
    if isinstance(key, EllipticCurvePublicKey):
        alg = EC_ALGORITHMS.get(key.curve.name)
        return (alg,) if alg else ()
    if isinstance(key, Ed25519PublicKey | Ed448PublicKey):
        return ("EdDSA",)
    return ()


def verification_key(key: object, kid: str | None = None) -> VerificationKey:
    """Wrap a public key, or raise ValueError if it can verify no algorithm we support."""
    algorithms = algorithms_for(key)
    if not algorithms or not isinstance(
        key, RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
    ):
        raise ValueError("not an RSA (2048 bits or more), EC P-256/384/521 or EdDSA public key")
    return VerificationKey(key, algorithms, kid)


def load_public_key_pem(pem: bytes) -> VerificationKey:
    """The verification key in a PEM SubjectPublicKeyInfo, or ValueError."""
    try:
        key = serialization.load_pem_public_key(pem)
    except UnsupportedAlgorithm as exc:
        raise ValueError(f"unsupported key type: {exc}") from exc
    return verification_key(key)


class KeySource(Protocol):
    """Finds the key for a token's `kid` (None when the token has none)."""

    async def key_for(self, kid: str | None) -> VerificationKey | None: ...


class StaticKeys:
    """Keys fixed at start-up: by kid, and optionally one key for any kid (a single PEM file)."""

    def __init__(
        self,
        by_kid: Mapping[str, VerificationKey] | None = None,
        *,
        any_kid: VerificationKey | None = None,
    ) -> None:
        self._by_kid = dict(by_kid or {})
        self._any_kid = any_kid

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """The key registered under `kid`, else the any-kid key, else None."""
        found = self._by_kid.get(kid) if kid is not None else None
        return found or self._any_kid


class ChainedKeys:
    """Asks several sources in order; the first that knows the kid answers."""

    def __init__(self, *sources: KeySource) -> None:
        self._sources = sources

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """The first source's key for `kid`, or None."""
        for source in self._sources:
            found = await source.key_for(kid)
            if found is not None:
                return found
        return None


class JwksKeys:
    """Keys from a JWKS endpoint, fetched in a worker thread and cached.

    The set is refetched when older than `max_age`, or when a token names an unknown kid; but
    never more than once per `min_refresh_interval` (a flood of made-up kids must not become a
    flood of requests to the identity provider). When the endpoint fails or hangs, the last good
    set keeps working for `stale_limit` seconds after it was fetched, then nothing verifies.
    """

    def __init__(
        self,
        url: str,
        *,
        fetch_timeout: float = 3.0,
        min_refresh_interval: float = 10.0,
        max_age: float = 300.0,
        stale_limit: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # PyJWKClient only fetches here (its own cache is off): it refuses non-http(s) URLs and
        # redirects, and applies the socket timeout. Caching and rate limits are ours.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=fetch_timeout)
        self._fetch_timeout = fetch_timeout
        self._min_refresh_interval = min_refresh_interval
        self._max_age = max_age
        self._stale_limit = stale_limit
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._lock = anyio.Lock()

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """The key for `kid`, refreshing the set when it is due or the kid is unknown."""
        if kid is None:  # with many keys, a token must say which one
            return None
        found = self._usable(kid)
        if found is not None and not self._refresh_due():
            return found
        if found is not None and self._lock.locked():
            return found  # someone is refreshing; the current key is still within its bounds
        await self.refresh()
        return self._usable(kid)

    async def refresh(self) -> None:
        """Fetch the set now unless one was tried within `min_refresh_interval`; never raises."""
        if not self._may_try():
            return
        async with self._lock:
            if not self._may_try():  # another task refreshed while we waited
                return
            self._tried_at = self._clock()
            keys = await self._fetch()
            if keys:
                self._keys, self._fetched_at = keys, self._clock()

    def _usable(self, kid: str) -> VerificationKey | None:
        if self._fetched_at is None or self._clock() - self._fetched_at > self._stale_limit:
            return None
        return self._keys.get(kid)

    def _refresh_due(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age

    def _may_try(self) -> bool:
        return (
            self._tried_at is None or self._clock() - self._tried_at >= self._min_refresh_interval
        )

    async def _fetch(self) -> dict[str, VerificationKey]:
        # urllib blocks, so it runs in a worker thread; the thread is abandoned (and ends by its
        # own socket timeout) if it outlives ours, so a hanging endpoint never stalls a request
        # for longer than fetch_timeout, and never stalls the event loop at all.
        with anyio.move_on_after(self._fetch_timeout):
            try:
                data = await to_thread.run_sync(self._client.fetch_data, abandon_on_cancel=True)
                return parse_jwks(data)
            except Exception as exc:  # any failure means "keep the last good set"
                log.warning(
                    "authn.jwks_fetch_failed", url=self._client.uri, error=type(exc).__name__
                )
                return {}
        log.warning("authn.jwks_fetch_failed", url=self._client.uri, error="timeout")
        return {}


def parse_jwks(data: Any) -> dict[str, VerificationKey]:
    """The usable signing keys of a JWKS document, by kid; skips every entry we cannot trust."""
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS document has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    for entry in entries[:MAX_JWKS_KEYS]:
        found = _jwk_entry(entry)
        if found is not None and found.kid is not None:
            keys.setdefault(found.kid, found)  # a repeated kid is ambiguous: the first one wins
    return keys


def _jwk_entry(entry: object) -> VerificationKey | None:
    if not isinstance(entry, dict) or not is_valid_kid(entry.get("kid")):
        return None
    if entry.get("use", "sig") != "sig" or "d" in entry:  # encryption keys; leaked private keys
        return None
    if entry.get("kty") not in ("RSA", "EC", "OKP"):  # "oct" would be an HMAC secret
        return None
    try:
        key = verification_key(jwt.PyJWK(entry).key, entry["kid"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    return _restrict(key, entry.get("alg"))


def _restrict(key: VerificationKey, alg: object) -> VerificationKey | None:
    # A JWK's "alg" names the one algorithm the key is meant for (RFC 7517 §4.4).
    if alg is None:
        return key
    if alg not in key.algorithms:
        return None
    return VerificationKey(key.key, (str(alg),), key.kid)
