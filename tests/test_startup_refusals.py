"""Operator mistakes are refused at start-up in one line (contract §2), by the real CLI.

Each case runs `footage-gateway serve` in a subprocess with one mistake in an otherwise good
configuration: exit status 2, one line on stderr naming the key, no traceback, nothing served.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.settings import KEYS, TOOLING_KEYS, TOOLING_PREFIX, load_settings
from tests.support.cluster import copy_policies
from tests.support.faults import REPO
from tests.support.server import GatewayEnv, free_port, make_env

Mistake = Callable[[GatewayEnv, Path], dict[str, str]]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,  # a refusal takes a moment; a gateway that starts serving never exits
        cwd=REPO,
        check=False,
    )


def private_pem(path: Path) -> str:
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def empty_policy_dir(_env: GatewayEnv, tmp: Path) -> dict[str, str]:
    (tmp / "empty-policies").mkdir()
    return {"FOOTGW_POLICY_DIR": str(tmp / "empty-policies")}


def allow_every_role(_env: GatewayEnv, tmp: Path) -> dict[str, str]:
    policies = copy_policies(tmp / "open-policies")
    with (policies / "policy.csv").open("a") as out:
        out.write("p, *, customer_support, view, *, allow, none\n")
    return {"FOOTGW_POLICY_DIR": str(policies)}


def unreachable_database(_env: GatewayEnv, _tmp: Path) -> dict[str, str]:
    import socket

    with socket.socket() as sock:  # bound, never listening: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        return {"FOOTGW_DATABASE_URL": f"postgresql://gw:pw@127.0.0.1:{port}/footage"}


def toml_typo(_env: GatewayEnv, tmp: Path) -> dict[str, str]:
    (tmp / "gateway.toml").write_text('jwt_isuer = "https://idp.example"\n')
    return {"FOOTGW_CONFIG": str(tmp / "gateway.toml")}


MISTAKES: dict[str, tuple[Mistake, str, str]] = {
    # case: (how to make the mistake, the key the line names, a phrase the line says)
    "env typo": (
        lambda e, t: {"FOOTGW_JWT_ISUER": "https://idp.example"},
        "FOOTGW_JWT_ISUER",
        "did you mean FOOTGW_JWT_ISSUER?",
    ),
    "toml typo": (toml_typo, "FOOTGW_JWT_ISUER", "did you mean FOOTGW_JWT_ISSUER?"),
    "dev mode beside a key file": (
        lambda e, t: {"FOOTGW_DEV_MODE": "1"},
        "FOOTGW_DEV_MODE",
        "FOOTGW_JWT_PUBLIC_KEY_FILE",
    ),
    "dev mode beside JWKS": (
        lambda e, t: {
            "FOOTGW_DEV_MODE": "1",
            "FOOTGW_JWT_PUBLIC_KEY_FILE": "",
            "FOOTGW_JWT_JWKS_URL": "https://idp.example/jwks.json",
        },
        "FOOTGW_DEV_MODE",
        "FOOTGW_JWT_JWKS_URL",
    ),
    "a private key as the public key": (
        lambda e, t: {"FOOTGW_JWT_PUBLIC_KEY_FILE": private_pem(t / "signing.pem")},
        "FOOTGW_JWT_PUBLIC_KEY_FILE",
        "private key",
    ),
    "a policy dir without policy files": (empty_policy_dir, "FOOTGW_POLICY_DIR", "model.conf"),
    "a rule that allows every role": (allow_every_role, "FOOTGW_POLICY_DIR", "every role"),
    "an unreachable database": (unreachable_database, "FOOTGW_DATABASE_URL", "cannot connect"),
    "a storage dir that does not exist": (
        lambda e, t: {"FOOTGW_STORAGE": f"file://{t / 'no-such-dir'}"},
        "FOOTGW_STORAGE",
        "not an existing directory",
    ),
    "a checkpoint key that is a public key": (
        lambda e, t: {"FOOTGW_CHECKPOINT_KEY_FILE": e.env["FOOTGW_JWT_PUBLIC_KEY_FILE"]},
        "FOOTGW_CHECKPOINT_KEY_FILE",
        "private key",
    ),
    "leeway above 30 s": (lambda e, t: {"FOOTGW_JWT_LEEWAY": "300"}, "FOOTGW_JWT_LEEWAY", "300"),
    "a malformed trusted proxy": (
        lambda e, t: {"FOOTGW_TRUSTED_PROXIES": "10.0.0.1,10.0.0.300"},
        "FOOTGW_TRUSTED_PROXIES",
        "10.0.0.300",
    ),
    "a redis url of another scheme": (
        lambda e, t: {"FOOTGW_REDIS_URL": "http://127.0.0.1:6379"},
        "FOOTGW_REDIS_URL",
        "rediss://",
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_serve_refuses_the_mistake_in_one_line(tmp_path: Path, case: str) -> None:
    make, key, phrase = MISTAKES[case]
    env = make_env(tmp_path, {"FOOTGW_PORT": str(free_port())})
    result = run({**env.env, **make(env, tmp_path)}, "serve")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"footage-gateway: configuration error: {key}: "), lines[0]
    assert phrase in lines[0], lines[0]


def test_the_good_configuration_of_those_cases_is_not_refused(tmp_path: Path) -> None:
    """The baseline every case above changes passes every check (so each refusal is its own)."""
    from gateway.preflight import preflight

    env = make_env(tmp_path)
    preflight(load_settings(env.env))
    (tmp_path / "tree").mkdir()
    preflight(load_settings({**env.env, "FOOTGW_STORAGE": f"file://{tmp_path / 'tree'}"}))


def test_every_key_the_settings_read_is_known() -> None:
    """A key added to settings.py but not to KEYS would refuse its own configuration."""
    from tests.test_contract_doc import setting_keys

    read = {k for k in setting_keys() if k not in TOOLING_KEYS and not k.startswith(TOOLING_PREFIX)}
    assert read <= KEYS, sorted(read - KEYS)


def test_the_test_suites_own_keys_are_not_settings() -> None:
    env = {"FOOTGW_TEST_REDIS_URL": "redis://x", "FOOTGW_SOAK_SECONDS": "9", "FOOTGW_DEV_MODE": "1"}
    assert load_settings(env).dev_mode
    assert not any(key.startswith("FOOTGW_TEST_") for key in KEYS)


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--role", "suport_agent", "unknown role 'suport_agent'; did you mean support_agent?"),
        ("--purpose", "customer-support", "unknown purpose 'customer-support'; did you mean"),
        ("--zone", "backyard", "'backyard'"),  # argparse's choices name it
    ],
)
def test_policy_check_names_an_unknown_term(
    tmp_path: Path, flag: str, value: str, named: str
) -> None:
    env = make_env(tmp_path)
    asked = {"--role": "support_agent", "--purpose": "customer_support", "--zone": "outdoor"}
    asked[flag] = value
    args = [part for pair in asked.items() for part in pair]
    result = run(env.env, "policy", "check", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stderr
    assert "deny" not in result.stdout  # not mistaken for the policy's answer
