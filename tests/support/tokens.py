"""Key pairs and tokens for tests: valid ones, and the hand-built attacks PyJWT refuses to make.

Used by tests/test_authn.py and by the over-HTTP tests; nothing here touches the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

KeyKind = Literal["rsa", "ec", "ed25519"]
KINDS: tuple[KeyKind, ...] = ("rsa", "ec", "ed25519")
ALGORITHM = {"rsa": "RS256", "ec": "ES256", "ed25519": "EdDSA"}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_RSA_CACHE: dict[int, rsa.RSAPrivateKey] = {}


@dataclass(frozen=True)
class Keypair:
    """A private key, its algorithm, and a kid."""

    kind: KeyKind
    private: PrivateKey
    kid: str

    @property
    def alg(self) -> str:
        return ALGORITHM[self.kind]

    @property
    def public(self) -> PublicKey:
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK (with kid, use and alg), as a JWKS entry."""
        public = self.public
        if isinstance(public, rsa.RSAPublicKey):
            entry = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            entry = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            entry = OKPAlgorithm.to_jwk(public, as_dict=True)
        entry.update({"kid": self.kid, "use": "sig", "alg": self.alg}, **extra)
        return entry

    def write_public_pem(self, directory: Path) -> Path:
        """Write the public key PEM into `directory` (for FOOTGW_JWT_PUBLIC_KEY_FILE)."""
        path = directory / f"{self.kid}.pub.pem"
        path.write_bytes(self.public_pem())
        return path


def make_keypair(
    kind: KeyKind = "ed25519", kid: str | None = None, *, fresh: bool = False
) -> Keypair:
    """A new key pair; RSA keys are reused per process unless `fresh` (they are slow to make)."""
    if kind == "rsa":
        private: PrivateKey = _rsa_key(fresh)
    elif kind == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return Keypair(kind, private, kid or f"{kind}-{id(private):x}")


def _rsa_key(fresh: bool) -> rsa.RSAPrivateKey:
    if fresh or not _RSA_CACHE:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if fresh:
            return key
        _RSA_CACHE[0] = key
    return _RSA_CACHE[0]


def jwks(*keys: Keypair) -> dict[str, Any]:
    """A JWKS document holding the public halves of `keys`."""
    return {"keys": [k.jwk() for k in keys]}


def claims(
    sub: Any = "alice",
    roles: Any = ("customer",),
    customer_id: Any = "cust-1",
    *,
    ttl: int = 300,
    now: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A claim set valid for `ttl` seconds; any claim given as None is left out.

    Claims are taken as given (a string `roles` stays a string), so attacks can be built too.
    """
    issued = int(time.time() if now is None else now)
    wanted: dict[str, Any] = {
        "sub": sub,
        "roles": list(roles) if isinstance(roles, tuple) else roles,
        "customer_id": customer_id,
        "iat": issued,
        "exp": issued + ttl,
        **extra,
    }
    return {name: value for name, value in wanted.items() if value is not None}


def sign(
    payload: Mapping[str, Any],
    key: Keypair,
    alg: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A token signed by `key` (its own alg and kid unless overridden; kid=None drops it).

    Assembled by hand rather than by jwt.encode, so that a test can put anything in the
    header (a non-string kid, `crit`, `jku`...) and still carry a valid signature.
    """
    alg = alg or key.alg
    header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": key.kid, **(headers or {})}
    if header.get("kid") is None:
        header.pop("kid")
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode("ascii"), key.private)
    return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(dict(value), separators=(",", ":")).encode())


def hand_built(
    header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes = b""
) -> str:
    """A compact JWS assembled by hand, e.g. `alg: none` (which PyJWT will not sign for us)."""
    return f"{_segment(header)}.{_segment(payload)}.{_b64(signature)}"


def hmac_token(
    payload: Mapping[str, Any],
    secret: bytes,
    alg: str = "HS256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """An HMAC token with any secret, even a public key PEM (the RS256→HS256 confusion attack)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = {"alg": alg, "typ": "JWT", **(headers or {})}
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def tamper(token: str) -> str:
    """The token with one byte of its signature flipped."""
    head, _, signature = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{_b64(bytes(raw))}"


def bearer(token: str) -> str:
    """The Authorization header value for `token`."""
    return f"Bearer {token}"
