"""The `footage-gateway` command line (contract §9)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load settings (one clear line on error), run the command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from gateway.migrations import SchemaError

    try:
        settings = load_settings(config_file=args.config)
        return int(args.func(args, settings))
    except ConfigError as exc:
        print(f"footage-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except SchemaError as exc:
        print(f"footage-gateway: {exc}", file=sys.stderr)
        return 2


CONFIG_HELP = "a TOML file of FOOTGW_ settings, before or after the command (the environment wins)"


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before the command and after it: each parser below inherits it from
    # `config`, whose default is SUPPRESS so an absent later --config keeps an earlier one.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
    parser = argparse.ArgumentParser(
        prog="footage-gateway", description=__doc__, epilog=_vocabulary()
    )
    parser.add_argument("--config", default=None, help=CONFIG_HELP)
    sub = parser.add_subparsers(metavar="command")
    _add_serve_and_demo(sub, config)
    _add_token(sub, config)
    _add_audit(sub, config)
    _add_policy(sub, config)
    _add_maintenance(sub, config)
    return parser


def _group(sub: Subparsers, config: argparse.ArgumentParser, name: str, help: str) -> Subparsers:
    """A two-word command's first word (`audit verify`): --config may follow either word."""
    return sub.add_parser(name, parents=[config], help=help).add_subparsers(metavar="command")


def _add_maintenance(sub: Subparsers, config: argparse.ArgumentParser) -> None:
    retention = _group(sub, config, "retention", "footage past retention")
    enforce = retention.add_parser(
        "enforce", parents=[config], help="list footage past FOOTGW_RETENTION_DAYS"
    )
    enforce.add_argument("--apply", action="store_true", help="delete it too (audited)")
    enforce.set_defaults(func=_retention_enforce)

    storage = _group(sub, config, "storage", "inspect the footage store")
    storage.add_parser(
        "check",
        parents=[config],
        help="name every stored object that is not a clip; exit 0 clean, 1 if any",
    ).set_defaults(func=_storage_check)


def _vocabulary() -> str:
    """The closed sets a token and a policy check speak, from gateway.types (never retyped)."""
    from gateway.types import Action, Purpose, Role, Zone

    return (
        f"roles: {', '.join(Role)}; purposes: {', '.join(Purpose)}; "
        f"zones: {', '.join(Zone)}; actions: {', '.join(Action)}"
    )


def _add_serve_and_demo(sub: Subparsers, config: argparse.ArgumentParser) -> None:
    from gateway.demo import SCENARIOS

    serve = sub.add_parser(
        "serve",
        parents=[config],
        help="serve the gateway",
        description="Serve on FOOTGW_HOST:FOOTGW_PORT (127.0.0.1:8080). Tokens are verified "
        "with FOOTGW_JWT_PUBLIC_KEY_FILE or FOOTGW_JWT_JWKS_URL; without either it stops, "
        "unless FOOTGW_DEV_MODE=1 (a local dev key, never for a deployment).",
    )
    serve.add_argument("--migrate", action="store_true", help="apply schema migrations first")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=None,
        metavar="N",
        help="worker processes on the one socket (FOOTGW_WORKERS; default: one per CPU "
        "available); above 1 without FOOTGW_REDIS_URL, detection counts in a SQLite file",
    )
    serve.set_defaults(func=_serve)

    demo = sub.add_parser(
        "demo",
        parents=[config],
        help="seed demo footage into the data dir, print curl lines, and serve "
        "(needs FOOTGW_DEV_MODE=1)",
    )
    demo.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="basic",
        help="basic: the walk-through alone; browsing: also replay a support agent "
        "sweeping 12 customers until detection suspends them",
    )
    demo.add_argument("--no-serve", action="store_true", help="seed and print, do not serve")
    demo.set_defaults(func=_demo)

    migrate = sub.add_parser("migrate", parents=[config], help="apply database schema migrations")
    migrate.set_defaults(func=_migrate)


def _add_token(sub: Subparsers, config: argparse.ArgumentParser) -> None:
    from gateway.types import Role

    token = sub.add_parser(
        "token", parents=[config], help="mint a token (dev mode, or with --private-key)"
    )
    token.add_argument(
        "--sub", required=True, type=_principal_id, help="the principal: a user or staff id"
    )
    token.add_argument(
        "--role",
        action="append",
        required=True,
        dest="roles",
        help=f"a role, repeatable; one of: {', '.join(Role)}",
    )
    token.add_argument("--customer-id", help="the customer_id claim (for the customer role)")
    token.add_argument("--ttl", type=_positive_int, default=3600, help="lifetime in seconds (3600)")
    token.add_argument(
        "--private-key",
        help="sign with this PEM private key (Ed25519, P-256 or RSA) instead of the dev key, "
        "e.g. the key whose public half FOOTGW_JWT_PUBLIC_KEY_FILE names (docs/deploy.md)",
    )
    token.add_argument("--kid", help="the kid header to send with --private-key")
    token.set_defaults(func=_token)


def _worker_count(raw: str) -> int:
    """1 to MAX_WORKERS processes (argparse reports anything else as a usage error)."""
    from gateway.settings import MAX_WORKERS

    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} processes, got {raw!r}")
    return value


def _principal_id(raw: str) -> str:
    """A sub the gateway would accept: not blank (authn.py refuses a token whose sub is)."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("expected a user or staff id, got a blank one")
    return raw


def _positive_int(raw: str) -> int:
    """A whole number of seconds above zero (argparse reports anything else as a usage error)."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {raw!r}")
    return value


def _add_audit(sub: Subparsers, config: argparse.ArgumentParser) -> None:
    audit = _group(sub, config, "audit", "verify or export the audit log")
    audit.add_parser(
        "verify", parents=[config], help="exit 0 if the chain is intact, 1 if not"
    ).set_defaults(func=_audit_verify)
    audit.add_parser(
        "export", parents=[config], help="the log as JSON lines on stdout"
    ).set_defaults(func=_audit_export)


def _add_policy(sub: Subparsers, config: argparse.ArgumentParser) -> None:
    from gateway.types import Action, Purpose, Role, Zone

    policy = _group(sub, config, "policy", "ask the policy")
    check = policy.add_parser(
        "check", parents=[config], help="print allow or deny, and the rule that decided"
    )
    # No `choices`: an unknown term is named, with the closest known one (policy_check.py).
    check.add_argument("--role", required=True, help=f"one of: {', '.join(Role)}")
    check.add_argument("--purpose", required=True, help=f"one of: {', '.join(Purpose)}")
    # A zone is a closed set the gateway never sees outside it; a typo here would match the
    # `*` zone rows and print "allow" for a zone that cannot exist, so it is refused instead.
    check.add_argument(
        "--zone",
        required=True,
        choices=[str(z) for z in Zone],
        metavar="ZONE",
        help=f"one of: {', '.join(Zone)}",
    )
    check.add_argument(
        "--action", default=Action.VIEW, help=f"one of: {', '.join(Action)} ({Action.VIEW})"
    )
    check.add_argument("--grant", action="store_true", help="assume a covering grant exists")
    check.add_argument(
        "--include-private", action="store_true", help="assume the grant has include_private"
    )
    check.set_defaults(func=_policy_check)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from gateway.server import serve

    if args.workers is not None:  # the flag wins over FOOTGW_WORKERS
        settings = replace(settings, workers=args.workers)
    return serve(settings, migrate=args.migrate)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.demo.run import run_demo

    return run_demo(settings, scenario=args.scenario, serve_after=not args.no_serve)


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from gateway import migrations
    from gateway.db import create_db_engine

    try:
        applied = migrations.migrate(create_db_engine(settings.database_url))
    except migrations.SchemaError as exc:
        print(f"footage-gateway: {exc}", file=sys.stderr)
        return 2
    print(f"applied migrations: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.devkeys import mint_dev_token

    if args.private_key:
        print(_signed_token(args, settings))
        return 0
    if not settings.dev_mode:
        raise ConfigError(
            "FOOTGW_DEV_MODE",
            "`token` signs with the local dev key: set it to 1, or pass --private-key PEM",
        )
    print(
        mint_dev_token(
            settings.dev_key_file,
            sub=args.sub,
            roles=args.roles,
            customer_id=args.customer_id,
            ttl=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    )
    return 0


def _signed_token(args: argparse.Namespace, settings: Settings) -> str:
    """A token signed with an operator's own private key (no dev mode needed: they hold it)."""
    import time
    from pathlib import Path

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    path = Path(args.private_key)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"footage-gateway: cannot use {path} as a PEM private key: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "EdDSA"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        algorithm = "ES256"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RS256"
    else:
        raise SystemExit(f"footage-gateway: {path} is not an Ed25519, P-256 or RSA key")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": args.sub,
        "roles": args.roles,
        "iat": now,
        "exp": now + args.ttl,
    }
    optional = {
        "customer_id": args.customer_id,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    claims.update({name: value for name, value in optional.items() if value is not None})
    headers = {"kid": args.kid} if args.kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _audit_verify(_args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.tools import verify_log

    result, checkpoint = verify_log(settings)
    # The same JSON as GET /v1/audit/verify (contract §5), checkpoint included.
    body = {**result.as_json(), "checkpoint": checkpoint.as_json() if checkpoint else None}
    print(json.dumps(body))
    if not result.ok:
        print(
            f"audit log is NOT intact: first bad seq {result.first_bad_seq}: {result.problem}",
            file=sys.stderr,
        )
        return 1
    return 0


def _audit_export(_args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.tools import export_log

    export_log(settings, sys.stdout)
    return 0


def _policy_check(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.policy_check import explain, unknown_term

    problem = unknown_term(args.role, args.purpose, args.zone, args.action)
    if problem:
        # A typo answered "deny" would read as the policy's answer; name it instead.
        print(f"footage-gateway: policy check: {problem}", file=sys.stderr)
        return 2
    allowed, text = explain(
        settings.policy_dir,
        args.role,
        args.purpose,
        args.zone,
        args.action,
        grant=args.grant,
        include_private=args.include_private,
    )
    print(text)
    return 0 if allowed else 1


def _retention_enforce(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.retention import enforce

    return asyncio.run(enforce(settings, apply=args.apply, out=sys.stdout))


def _storage_check(_args: argparse.Namespace, settings: Settings) -> int:
    from gateway.preflight import storage_dir
    from gateway.storage.check import run

    storage_dir(settings)  # before the file store would make the directory it names
    return asyncio.run(run(settings, sys.stdout, sys.stderr))


if __name__ == "__main__":
    raise SystemExit(main())
