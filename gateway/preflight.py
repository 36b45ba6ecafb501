"""Operator mistakes that only the world can show, refused before `serve` binds a port.

`load_settings` refuses what a value alone shows (an unknown key, leeway above 30 s, a
malformed proxy address). What needs a file, a directory or a connection is checked here, once,
at start-up: each problem is a ConfigError naming its key, which the CLI prints as one line
and exit status 2 (contract §2) instead of a traceback from deep inside the lifespan.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cluster.policy_watch import POLICY_FILES, UnsafePolicy, check_candidate
from gateway.db import create_db_engine
from gateway.errors import ConfigError
from gateway.jwtkeys import load_public_key_pem
from gateway.settings import PREFIX, Settings


def preflight(settings: Settings) -> None:
    """Raise ConfigError for the first setting that names something unusable."""
    _public_key(settings.jwt_public_key_file)
    _policy_dir(settings.policy_dir)
    storage_dir(settings)
    _checkpoint_key(settings)
    _database(settings.database_url)


def _public_key(path: Path | None) -> None:
    key = f"{PREFIX}JWT_PUBLIC_KEY_FILE"
    if path is None:
        return
    pem = _read(key, path)
    if b"PRIVATE KEY" in pem:
        # A private key here means the signing secret sits on the gateway's disk: refuse it,
        # and never derive a public half from it silently.
        raise ConfigError(key, f"{path} holds a private key; give the gateway its public half")
    try:
        load_public_key_pem(pem)
    except ValueError as exc:
        raise ConfigError(key, f"{path} is not a usable PEM public key ({exc})") from exc


def _policy_dir(policy_dir: Path) -> None:
    key = f"{PREFIX}POLICY_DIR"
    missing = [name for name in POLICY_FILES if not (policy_dir / name).is_file()]
    if missing:
        raise ConfigError(key, f"{policy_dir} has no {' or '.join(missing)}")
    try:
        # The very check a hot reload must pass (docs/security.md): start-up is no laxer.
        check_candidate(policy_dir)
    except UnsafePolicy as exc:
        raise ConfigError(key, f"refused: {exc}") from exc
    except Exception as exc:  # Casbin's own parse errors carry no type of their own
        raise ConfigError(key, f"cannot be loaded: {exc}".splitlines()[0]) from exc


def storage_dir(settings: Settings) -> None:
    """An operator's file:// tree must exist; only the embedded default is created for them
    (`serve` and `storage check` both ask: a mistyped path is never an empty, clean store)."""
    if not settings.storage.startswith("file://"):
        return
    root = Path(settings.storage.removeprefix("file://"))
    if root == settings.data_dir / "footage":
        return
    if not root.is_dir():
        raise ConfigError(f"{PREFIX}STORAGE", f"{root} is not an existing directory")


def _checkpoint_key(settings: Settings) -> None:
    """The checkpoint key signs: it must be an Ed25519 private key (created if absent)."""
    key = f"{PREFIX}CHECKPOINT_KEY_FILE"
    path = settings.checkpoint_key_path
    if not path.exists():
        return  # created 0600 on first use (contract §7)
    try:
        loaded = serialization.load_pem_private_key(_read(key, path), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(key, f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(key, f"{path} is not an Ed25519 private key")


def _database(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        # The driver's first line says why (refused, unknown host, no such database) and never
        # holds the password; the URL itself is not echoed.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise ConfigError(f"{PREFIX}DATABASE_URL", f"cannot connect: {reason}") from exc
    finally:
        engine.dispose()


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from exc
