"""Settings: env and TOML, env wins, and one clear line naming the key on bad values."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings


def test_defaults_are_the_embedded_ones():
    s = load_settings({})
    assert s.storage == "file://var/footage"
    assert s.database_url == "sqlite:///var/gateway.db"
    assert s.jwt_algorithms == ("RS256", "ES256", "EdDSA")
    assert (s.host, s.port, s.delivery, s.dev_mode) == ("127.0.0.1", 8080, "proxy", False)
    assert s.retention_days is None and s.redis_url is None


def test_toml_file_is_read_and_environment_wins(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text('port = 9000\nFOOTGW_RETENTION_DAYS = 30\njwt_algorithms = ["EdDSA"]\n')
    s = load_settings({"FOOTGW_PORT": "9100"}, config)
    assert s.port == 9100 and s.retention_days == 30 and s.jwt_algorithms == ("EdDSA",)
    via_env = load_settings({"FOOTGW_CONFIG": str(config)})
    assert via_env.port == 9000


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"FOOTGW_PORT": "eighty"}, "FOOTGW_PORT"),
        ({"FOOTGW_PORT": "70000"}, "FOOTGW_PORT"),
        ({"FOOTGW_STORAGE": "ftp://x"}, "FOOTGW_STORAGE"),
        ({"FOOTGW_DATABASE_URL": "mysql://x"}, "FOOTGW_DATABASE_URL"),
        ({"FOOTGW_DELIVERY": "carrier-pigeon"}, "FOOTGW_DELIVERY"),
        ({"FOOTGW_DELIVERY": "redirect"}, "FOOTGW_DELIVERY"),  # needs s3://
        ({"FOOTGW_DELIVERY": "accel", "FOOTGW_STORAGE": "s3://bucket"}, "FOOTGW_DELIVERY"),
        ({"FOOTGW_DELIVERY": "ACCEL"}, "FOOTGW_DELIVERY"),
        ({"FOOTGW_ACCEL_PREFIX": "_footage_internal/"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "/_footage_internal"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "/"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "/a/../b/"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "/a b/"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "/a%2f/"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_ACCEL_PREFIX": "//"}, "FOOTGW_ACCEL_PREFIX"),
        ({"FOOTGW_JWT_ALGORITHMS": "none"}, "FOOTGW_JWT_ALGORITHMS"),
        ({"FOOTGW_JWT_ALGORITHMS": "HS256"}, "FOOTGW_JWT_ALGORITHMS"),
        ({"FOOTGW_RETENTION_DAYS": "-1"}, "FOOTGW_RETENTION_DAYS"),
        ({"FOOTGW_DEV_MODE": "maybe"}, "FOOTGW_DEV_MODE"),
        ({"FOOTGW_JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"}, "FOOTGW_JWT_PUBLIC_KEY_FILE"),
        (
            {"FOOTGW_JWT_PUBLIC_KEY_FILE": __file__, "FOOTGW_JWT_JWKS_URL": "http://x"},
            "FOOTGW_JWT_JWKS_URL",
        ),
        ({"FOOTGW_CONFIG": "/nonexistent.toml"}, "FOOTGW_CONFIG"),
    ],
)
def test_bad_values_name_their_key(env, key):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.key == key and key in str(info.value)


def test_accel_delivery_serves_a_file_tree_through_an_internal_prefix():
    s = load_settings({"FOOTGW_DELIVERY": "accel"})
    assert (s.delivery, s.accel_prefix) == ("accel", "/_footage_internal/")
    assert s.trusted_proxies == ()  # not required: see settings._delivery
    custom = load_settings({"FOOTGW_DELIVERY": "accel", "FOOTGW_ACCEL_PREFIX": "/int/clips/"})
    assert custom.accel_prefix == "/int/clips/"


def test_bad_toml_names_the_config_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("port = = 1")
    with pytest.raises(ConfigError) as info:
        load_settings({}, config)
    assert info.value.key == "FOOTGW_CONFIG"


def test_hmac_is_only_accepted_in_dev_mode():
    assert load_settings({"FOOTGW_DEV_MODE": "1", "FOOTGW_JWT_ALGORITHMS": "HS256"})


@pytest.mark.parametrize(
    "key",
    [
        "FOOTGW_RETENTION_DAYS",
        "FOOTGW_GRANT_MAX_TTL",
        "FOOTGW_CHECKPOINT_EVERY",
        "FOOTGW_UNAUTHENTICATED_PER_MINUTE",
    ],
)
def test_a_zero_count_says_it_must_be_above_zero(key):
    # "expected days, got '0'" left the reader guessing what was wrong with 0.
    with pytest.raises(ConfigError, match="above 0, got '0'"):
        load_settings({key: "0"})


def test_the_unauthenticated_limit_defaults_to_sixty_a_minute():
    assert load_settings({}).unauthenticated_per_minute == 60
    assert load_settings({"FOOTGW_UNAUTHENTICATED_PER_MINUTE": "5"}).unauthenticated_per_minute == 5
