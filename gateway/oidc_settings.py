"""The FOOTGW_OIDC_* settings: which identity provider the console signs in with (contract §15).

A leaf module read by gateway/settings.py. Everything is checked here, at start-up: the issuer
and redirect URI are https (plain http only on loopback, for tests and a laptop), the client
secret file exists (it is read when used, and never logged), and `openid` is among the scopes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.errors import ConfigError

PREFIX = "FOOTGW_"
CALLBACK_PATH = "/auth/callback"


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """The identity provider the console signs in with; the secret stays a path."""

    issuer: str
    client_id: str
    client_secret_file: Path
    redirect_uri: str
    scopes: tuple[str, ...]
    resource: str | None

    @property
    def origin(self) -> str:
        """The gateway's public origin, as the redirect URI names it."""
        parts = urlsplit(self.redirect_uri)
        return f"{parts.scheme}://{parts.netloc}"

    def client_secret(self) -> str:
        """The client secret, read afresh (a rotated file takes effect at the next sign-in)."""
        try:
            secret = self.client_secret_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{PREFIX}OIDC_CLIENT_SECRET_FILE", exc.strerror or "unreadable"
            ) from exc
        if not secret:
            raise ConfigError(f"{PREFIX}OIDC_CLIENT_SECRET_FILE", "the file is empty")
        return secret


def read_oidc(text: Callable[[str], str | None]) -> OidcSettings | None:
    """OidcSettings from `text(name)` (a setting without the prefix), or None without an issuer."""
    issuer = text("OIDC_ISSUER")
    others = ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET_FILE", "OIDC_REDIRECT_URI", "OIDC_RESOURCE")
    if issuer is None:
        for name in (*others, "OIDC_SCOPES"):
            if text(name) is not None:
                raise ConfigError(PREFIX + name, "is set but FOOTGW_OIDC_ISSUER is not")
        return None
    _check_url("OIDC_ISSUER", issuer, query_allowed=False)
    client_id = _required(text, "OIDC_CLIENT_ID")
    secret_file = Path(_required(text, "OIDC_CLIENT_SECRET_FILE"))
    if not secret_file.is_file():
        raise ConfigError(f"{PREFIX}OIDC_CLIENT_SECRET_FILE", f"no such file: {secret_file}")
    redirect_uri = _required(text, "OIDC_REDIRECT_URI")
    _check_url("OIDC_REDIRECT_URI", redirect_uri, query_allowed=False)
    if urlsplit(redirect_uri).path != CALLBACK_PATH:
        raise ConfigError(f"{PREFIX}OIDC_REDIRECT_URI", f"must end in {CALLBACK_PATH}")
    scopes = tuple((text("OIDC_SCOPES") or "openid").replace(",", " ").split())
    if "openid" not in scopes:
        raise ConfigError(f"{PREFIX}OIDC_SCOPES", "must include openid")
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret_file=secret_file,
        redirect_uri=redirect_uri,
        scopes=scopes,
        resource=text("OIDC_RESOURCE"),
    )


def _required(text: Callable[[str], str | None], name: str) -> str:
    value = text(name)
    if value is None:
        raise ConfigError(PREFIX + name, "is required with FOOTGW_OIDC_ISSUER")
    return value


def _check_url(name: str, url: str, *, query_allowed: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ConfigError(PREFIX + name, f"must be an https URL, got {url!r}")
    if parts.query and not query_allowed:
        raise ConfigError(PREFIX + name, "must have no query string")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(PREFIX + name, "must be https (plain http only on loopback)")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: the only hosts plain http is allowed to."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
