"""gateway.devkeys: dev mode's local signing key and the tokens it mints."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from gateway.devkeys import load_or_create_dev_key, mint_dev_token
from gateway.errors import ConfigError


def test_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-jwt-key.pem"
    first = load_or_create_dev_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_or_create_dev_key(path).public_key() == first.public_key()
    assert list(path.parent.iterdir()) == [path]  # no temp files left behind


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev-jwt-key.pem"
    load_or_create_dev_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_dev_key(path)


def test_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev-jwt-key.pem"
    path.write_text("hello")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load_or_create_dev_key(path)


def test_minted_token_claims_and_header(tmp_path: Path) -> None:
    path = tmp_path / "dev-jwt-key.pem"
    now = time.time()
    token = mint_dev_token(
        path,
        sub="alice",
        roles=["customer"],
        customer_id="cust-1",
        ttl=60,
        issuer="https://idp/",
        audience="gw",
        now=now,
    )
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "dev", "typ": "JWT"}
    claims = jwt.decode(
        token,
        load_or_create_dev_key(path).public_key(),
        algorithms=["EdDSA"],
        audience="gw",
        issuer="https://idp/",
    )
    assert claims == {
        "sub": "alice",
        "roles": ["customer"],
        "customer_id": "cust-1",
        "iat": int(now),
        "exp": int(now) + 60,
        "iss": "https://idp/",
        "aud": "gw",
    }


def test_minted_token_leaves_out_unset_claims(tmp_path: Path) -> None:
    path = tmp_path / "dev-jwt-key.pem"
    token = mint_dev_token(path, sub="bob", roles=["support_agent"])
    claims = jwt.decode(token, load_or_create_dev_key(path).public_key(), algorithms=["EdDSA"])
    assert set(claims) == {"sub", "roles", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == 3600


def test_ttl_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        mint_dev_token(tmp_path / "k.pem", sub="a", roles=[], ttl=0)
