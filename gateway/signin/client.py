"""The authorization code flow with PKCE (RFC 7636, S256) as a confidential client.

What the gateway sends: `state` (CSRF on the callback), `nonce` (binds the ID token to this
login), an S256 code challenge (binds the code to this gateway's verifier), and optionally a
resource indicator (RFC 8707) naming the audience its access tokens must carry. What it checks:
the ID token's signature (keys from the provider's JWKS, as for every bearer token), `iss`,
`aud`, `azp`, `exp` and `nonce`. The access token is then verified by the Authenticator, the
same one every API request goes through: one trust path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import structlog

from gateway.jwtkeys import KeySource
from gateway.oidc_settings import OidcSettings
from gateway.signin.discovery import Discovery, ProviderMetadata

log = structlog.get_logger(__name__)

TOKEN_TIMEOUT = 10.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class SignInFailed(Exception):
    """A login that must not produce a session; the reason goes to the log only."""


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string of `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What the token endpoint returned and the gateway checked."""

    access_token: str
    id_token: str


class OidcClient:
    """The gateway's side of the code flow against one provider."""

    def __init__(self, settings: OidcSettings, discovery: Discovery, keys: KeySource) -> None:
        self.settings = settings
        self.discovery = discovery
        self._keys = keys

    async def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser to sign in."""
        meta = await self.discovery.metadata()
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self.settings.resource:
            params["resource"] = self.settings.resource
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        return meta.authorization_endpoint + separator + urlencode(params)

    def check_issuer_parameter(self, meta: ProviderMetadata, iss: str | None) -> None:
        """RFC 9207: a provider that names itself in the response must name the right one."""
        if iss is not None and iss != meta.issuer:
            raise SignInFailed("authorization response from another issuer")
        if iss is None and meta.iss_parameter:
            raise SignInFailed("authorization response without its iss parameter")

    async def exchange(self, code: str, verifier: str, nonce: str) -> TokenSet:
        """Redeem `code` with the PKCE verifier; SignInFailed unless every check passes."""
        meta = await self.discovery.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": verifier,
        }
        if self.settings.resource:
            form["resource"] = self.settings.resource
        auth = (self.settings.client_id, self.settings.client_secret())
        try:
            async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT, follow_redirects=False) as client:
                response = await client.post(
                    meta.token_endpoint,
                    data=form,
                    auth=auth,
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise SignInFailed(f"token endpoint unreachable: {type(exc).__name__}") from exc
        body = _json(response)
        if response.status_code != 200:
            # The provider's error code only (invalid_grant, …): never its description verbatim.
            error = body.get("error") if isinstance(body, dict) else None
            raise SignInFailed(f"token endpoint refused: {str(error)[:60]}")
        if not isinstance(body, dict) or str(body.get("token_type", "")).lower() != "bearer":
            raise SignInFailed("token response without a bearer token")
        access, id_token = body.get("access_token"), body.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise SignInFailed("token response without access_token and id_token")
        await self.check_id_token(id_token, meta, nonce)
        return TokenSet(access, id_token)

    async def check_id_token(self, id_token: str, meta: ProviderMetadata, nonce: str) -> None:
        """OIDC Core §3.1.3.7: signature, iss, aud, azp, exp and this login's nonce."""
        try:
            header = jwt.get_unverified_header(id_token)
            kid = header.get("kid")
            key = await self._keys.key_for(kid if isinstance(kid, str) else None)
            if key is None:
                raise SignInFailed("no key for the ID token")
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[a for a in ID_TOKEN_ALGORITHMS if a in key.algorithms],
                audience=self.settings.client_id,
                issuer=meta.issuer,
                leeway=30,
                options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SignInFailed(f"ID token refused: {type(exc).__name__}") from exc
        if not hmac.compare_digest(str(claims.get("nonce")), nonce):
            raise SignInFailed("ID token nonce does not match this login")
        azp = claims.get("azp")
        if azp is not None and azp != self.settings.client_id:
            raise SignInFailed("ID token issued to another client")

    async def end_session_url(self, post_logout: str) -> str | None:
        """RP-initiated logout (OIDC RP-Initiated Logout 1.0), where the provider offers it.

        Without `id_token_hint`: that would put a token in a URL (and so in the provider's
        access log and the browser's history). `client_id` names the client instead, and the
        provider asks the person to confirm, as the specification allows.
        """
        try:
            meta = await self.discovery.metadata()
        except Exception:  # the gateway's session is over either way
            return None
        if meta.end_session_endpoint is None:
            return None
        params = {
            "client_id": self.settings.client_id,
            "post_logout_redirect_uri": post_logout,
        }
        separator = "&" if "?" in meta.end_session_endpoint else "?"
        return meta.end_session_endpoint + separator + urlencode(params)


def _json(response: httpx.Response) -> Any:
    if len(response.content) > MAX_TOKEN_RESPONSE_BYTES:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def now() -> float:
    """Wall-clock seconds (a function, so the store's expiry reads one clock)."""
    return time.time()
