"""The demo's people and their dev tokens (dev mode only: signed by the local dev key)."""

from __future__ import annotations

from gateway.devkeys import mint_dev_token
from gateway.settings import Settings
from gateway.types import Role

TOKEN_TTL = 12 * 3600

# (sub, roles, customer_id) of everyone the demo mints a token for.
PEOPLE: dict[str, tuple[str, list[str], str | None]] = {
    "ALICE": ("alice", [Role.CUSTOMER], "cust-alice"),
    "BOB": ("bob", [Role.CUSTOMER], "cust-bob"),
    "SAM": ("sam@support", [Role.SUPPORT_AGENT], None),
    "ANA": ("ana@security", [Role.SECURITY_ANALYST], None),
    "LOU": ("lou@legal", [Role.LEGAL], None),
}


def dev_token(
    settings: Settings, sub: str, roles: list[str], customer_id: str | None = None
) -> str:
    """A demo token signed by the dev key, with the configured issuer and audience."""
    return mint_dev_token(
        settings.dev_key_file,
        sub=sub,
        roles=[str(role) for role in roles],
        customer_id=customer_id,
        ttl=TOKEN_TTL,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def tokens(settings: Settings) -> dict[str, str]:
    """A token for each of PEOPLE, by the shell variable name the walk-through exports."""
    return {
        name: dev_token(settings, sub, roles, customer)
        for name, (sub, roles, customer) in PEOPLE.items()
    }
