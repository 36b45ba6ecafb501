"""The FOOTGW_OIDC_* settings, the provider's discovery document and configurable claims.

Start-up refuses a sign-in configuration that would open a second trust path or could never
work, naming the key (contract §2, §15); discovery refuses a document that speaks for another
issuer or offers no S256 PKCE; roles and the customer id are read from the configured claims.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.authn import principal_from_claims
from gateway.errors import ConfigError, Unauthenticated
from gateway.settings import load_settings
from gateway.signin.discovery import parse_metadata

ISSUER = "https://sso.example.com/realms/footage"


@pytest.fixture
def oidc_env(tmp_path: Path) -> dict[str, str]:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    return {
        "FOOTGW_DATA_DIR": str(tmp_path),
        "FOOTGW_OIDC_ISSUER": ISSUER,
        "FOOTGW_OIDC_CLIENT_ID": "footage-gateway",
        "FOOTGW_OIDC_CLIENT_SECRET_FILE": str(secret),
        "FOOTGW_OIDC_REDIRECT_URI": "https://gw.example.com/auth/callback",
    }


def refused(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return caught.value


def test_a_provider_sets_the_issuer_and_reads_the_secret_from_its_file(oidc_env):
    settings = load_settings(oidc_env)
    assert settings.oidc is not None and settings.jwt_issuer == ISSUER
    assert settings.oidc.client_secret() == "s3cret"
    assert settings.oidc.origin == "https://gw.example.com"
    assert settings.oidc.scopes == ("openid",)
    assert "s3cret" not in repr(settings)  # the secret stays a path


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"FOOTGW_JWT_JWKS_URL": "https://sso.example.com/jwks"}, "FOOTGW_JWT_JWKS_URL"),
        ({"FOOTGW_DEV_MODE": "1"}, "FOOTGW_DEV_MODE"),
        ({"FOOTGW_JWT_ISSUER": "https://other.example.com"}, "FOOTGW_JWT_ISSUER"),
        ({"FOOTGW_OIDC_CLIENT_ID": ""}, "FOOTGW_OIDC_CLIENT_ID"),
        ({"FOOTGW_OIDC_CLIENT_SECRET_FILE": "/nonexistent"}, "FOOTGW_OIDC_CLIENT_SECRET_FILE"),
        ({"FOOTGW_OIDC_ISSUER": "http://sso.example.com"}, "FOOTGW_OIDC_ISSUER"),
        ({"FOOTGW_OIDC_ISSUER": "ftp://sso.example.com"}, "FOOTGW_OIDC_ISSUER"),
        ({"FOOTGW_OIDC_REDIRECT_URI": "https://gw.example.com/cb"}, "FOOTGW_OIDC_REDIRECT_URI"),
        (
            {"FOOTGW_OIDC_REDIRECT_URI": "http://gw.example.com/auth/callback"},
            "FOOTGW_OIDC_REDIRECT_URI",
        ),
        ({"FOOTGW_OIDC_SCOPES": "profile email"}, "FOOTGW_OIDC_SCOPES"),
        ({"FOOTGW_OIDC_ROLES_CLAIM": "roles..x"}, "FOOTGW_OIDC_ROLES_CLAIM"),
    ],
)
def test_start_up_refuses_a_sign_in_configuration_naming_the_key(oidc_env, change, key):
    assert refused({**oidc_env, **change}).key == key


def test_a_key_file_beside_a_provider_is_refused(oidc_env, tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n")
    assert refused({**oidc_env, "FOOTGW_JWT_PUBLIC_KEY_FILE": str(pem)}).key == (
        "FOOTGW_JWT_JWKS_URL"
    )


def test_provider_settings_without_an_issuer_are_refused(oidc_env):
    env = {k: v for k, v in oidc_env.items() if k != "FOOTGW_OIDC_ISSUER"}
    assert refused(env).key.startswith("FOOTGW_OIDC_")


def test_plain_http_is_allowed_on_loopback_only(oidc_env):
    env = {
        **oidc_env,
        "FOOTGW_OIDC_ISSUER": "http://127.0.0.1:9000",
        "FOOTGW_OIDC_REDIRECT_URI": "http://localhost:8080/auth/callback",
    }
    assert load_settings(env).oidc is not None


DOC = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/auth",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/certs",
    "code_challenge_methods_supported": ["plain", "S256"],
    "response_types_supported": ["code"],
    "end_session_endpoint": f"{ISSUER}/logout",
    "authorization_response_iss_parameter_supported": True,
}


def test_discovery_reads_the_endpoints():
    meta = parse_metadata(DOC, ISSUER)
    assert meta.token_endpoint == f"{ISSUER}/token" and meta.iss_parameter
    assert (
        parse_metadata({**DOC, "end_session_endpoint": None}, ISSUER).end_session_endpoint is None
    )


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "https://evil.example.com"},  # speaks for another issuer
        {"code_challenge_methods_supported": ["plain"]},  # no S256
        {"code_challenge_methods_supported": None},
        {"response_types_supported": ["id_token"]},  # no code flow
        {"token_endpoint": "http://sso.example.com/token"},  # an https issuer's plain endpoint
        {"jwks_uri": None},
    ],
)
def test_discovery_refuses_a_document_it_cannot_trust(change):
    with pytest.raises(ValueError):
        parse_metadata({**DOC, **change}, ISSUER)


def test_roles_and_customer_id_come_from_the_configured_claims():
    claims = {
        "sub": "alice",
        "exp": 2e9,
        "realm_access": {"roles": ["customer", "offline_access"]},
        "tenant": "c1",
    }
    principal = principal_from_claims(claims, "realm_access.roles", "tenant")
    assert principal.roles == frozenset({"customer", "offline_access"})
    assert principal.customer_id == "c1"
    with pytest.raises(Unauthenticated):  # the default claim is not there
        principal_from_claims(claims)
    with pytest.raises(Unauthenticated):  # a malformed customer id in the configured claim
        principal_from_claims({**claims, "tenant": "../c1"}, "realm_access.roles", "tenant")
