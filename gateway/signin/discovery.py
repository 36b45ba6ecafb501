"""The provider's metadata (OpenID Connect Discovery 1.0) and the signing keys it names.

The document is fetched when first needed, not at start-up (a gateway starts while its
provider is down, and signs nobody in until it is back), then kept for `max_age`. It is
refused unless its `issuer` is exactly the configured one (Discovery §4.3: otherwise a
provider could speak for another) and it offers the code flow with S256 PKCE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import structlog

from gateway.errors import Unauthenticated
from gateway.jwtkeys import JwksKeys, VerificationKey

log = structlog.get_logger(__name__)

WELL_KNOWN = "/.well-known/openid-configuration"
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 64 * 1024


class ProviderUnavailable(Unauthenticated):
    """The provider's metadata could not be had or was not acceptable: nobody signs in."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The endpoints the gateway uses, from a checked discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    iss_parameter: bool  # RFC 9207: the authorization response names its issuer


class Discovery:
    """The configured issuer's metadata, fetched lazily and cached; one instance per gateway."""

    def __init__(
        self,
        issuer: str,
        *,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._max_age = max_age
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._keys: JwksKeys | None = None
        self._lock = anyio.Lock()

    async def metadata(self) -> ProviderMetadata:
        """The provider's endpoints; ProviderUnavailable when they cannot be had."""
        if self._metadata is not None and self._clock() - self._fetched_at < self._max_age:
            return self._metadata
        async with self._lock:
            if self._metadata is None or self._clock() - self._fetched_at >= self._max_age:
                try:
                    self._metadata = parse_metadata(await _fetch(self.issuer), self.issuer)
                    self._fetched_at = self._clock()
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("signin.discovery_failed", error=str(exc)[:200])
                    if self._metadata is None:  # a stale document is better than none
                        raise ProviderUnavailable("The identity provider is unavailable.") from exc
        return self._metadata

    async def key_for(self, kid: str | None) -> VerificationKey | None:
        """KeySource: the key for `kid` from the provider's JWKS (the one trust path)."""
        if self._keys is None:
            try:
                jwks_uri = (await self.metadata()).jwks_uri
            except ProviderUnavailable:
                return None
            if self._keys is None:
                self._keys = JwksKeys(jwks_uri)
        return await self._keys.key_for(kid)


async def _fetch(issuer: str) -> Any:
    url = issuer.rstrip("/") + WELL_KNOWN
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
        response = await client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise ValueError("discovery document too large")
    return response.json()


def parse_metadata(doc: Any, issuer: str) -> ProviderMetadata:
    """Check a discovery document against what the gateway needs; ValueError naming the gap."""
    if not isinstance(doc, dict):
        raise ValueError("discovery document is not a JSON object")
    if doc.get("issuer") != issuer:
        raise ValueError(f"discovery names issuer {doc.get('issuer')!r}, not {issuer!r}")
    methods = doc.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise ValueError("the provider does not offer PKCE with S256")
    response_types = doc.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise ValueError("the provider does not offer the authorization code flow")
    end_session = doc.get("end_session_endpoint")
    scheme = issuer.split(":", 1)[0]  # an https issuer's endpoints are https too
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_url(doc, "authorization_endpoint", scheme),
        token_endpoint=_url(doc, "token_endpoint", scheme),
        jwks_uri=_url(doc, "jwks_uri", scheme),
        end_session_endpoint=_url(doc, "end_session_endpoint", scheme) if end_session else None,
        iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
    )


def _url(doc: dict[str, Any], name: str, scheme: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value.startswith(f"{scheme}://"):
        raise ValueError(f"discovery document has no usable {name}")
    return value
