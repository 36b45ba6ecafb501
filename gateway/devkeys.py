"""Dev mode's local signing key: an Ed25519 key kept under the data dir, and tokens minted with it.

Only `make run`, `footage-gateway token` and the authenticator in dev mode use this; a gateway
outside dev mode never reads the file (contract §2, FOOTGW_DEV_MODE).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import ConfigError

DEV_KID = "dev"
DEV_ALGORITHM = "EdDSA"
_KEY = "FOOTGW_DEV_MODE"


def load_or_create_dev_key(path: Path) -> Ed25519PrivateKey:
    """The dev signing key at `path`, created (PEM, mode 0600) on first use."""
    if not path.exists():
        _create(path)
    return _load(path)


def mint_dev_token(
    path: Path,
    *,
    sub: str,
    roles: Iterable[str],
    customer_id: str | None = None,
    ttl: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """A token signed with the dev key (EdDSA, kid "dev") carrying the given claims."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "roles": list(roles), "iat": issued, "exp": issued + ttl}
    if customer_id is not None:
        claims["customer_id"] = customer_id
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    key = load_or_create_dev_key(path)
    return jwt.encode(claims, key, algorithm=DEV_ALGORITHM, headers={"kid": DEV_KID})


def _create(path: Path) -> None:
    # Write a complete key to a private temp file, then link it into place: the link fails if
    # another process got there first, so two concurrent starts agree on one key and nobody
    # ever reads a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev-key-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _load(path: Path) -> Ed25519PrivateKey:
    # Whoever reads this file can mint any role's token in dev mode, so refuse a key others
    # can read, as ssh does with private keys.
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigError(_KEY, f"{path} is readable by other users; chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(_KEY, f"{path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(_KEY, f"{path} does not hold an Ed25519 private key")
    return key
