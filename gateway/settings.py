"""One frozen Settings, built once from FOOTGW_* environment variables and an optional TOML file.

The environment wins over the file. A bad value raises ConfigError naming the key, and the
CLI turns that into one line on stderr and a non-zero exit (contract §2).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast

from gateway.errors import ConfigError
from gateway.notify.config import NotifySettings, notify_settings
from gateway.oidc_settings import OidcSettings, read_oidc
from gateway.types import DeliveryMode

PREFIX = "FOOTGW_"
REPO_POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

T = TypeVar("T")

DEFAULT_ACCEL_PREFIX = "/_footage_internal/"
# The prefix is written into every X-Accel-Redirect header and must name nginx's `internal;`
# location: plain path segments only (no ".", "..", "%", "?", spaces or control characters),
# and never "/" alone, which would turn the whole site into an internal location.
_ACCEL_PREFIX = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+/", re.ASCII)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of one gateway process; see the README's settings table."""

    data_dir: Path
    storage: str
    s3_endpoint_url: str | None
    database_url: str
    redis_url: str | None
    policy_dir: Path
    jwt_public_key_file: Path | None
    jwt_jwks_url: str | None
    jwt_algorithms: tuple[str, ...]
    jwt_issuer: str | None
    jwt_audience: str | None
    jwt_leeway_seconds: int
    dev_mode: bool
    delivery: DeliveryMode
    accel_prefix: str
    retention_days: int | None
    host: str
    port: int
    grant_max_ttl_seconds: int
    access_request_ttl_seconds: int
    alert_webhook: str | None
    trusted_proxies: tuple[str, ...]
    checkpoint_key_file: Path | None
    checkpoint_retired_keys: tuple[Path, ...]
    checkpoint_every_events: int
    checkpoint_every_seconds: float
    log_format: Literal["json", "console", "auto"]
    unauthenticated_per_minute: int
    notify: NotifySettings
    # Worker processes `serve` runs on one socket; None: one per CPU this process may use.
    playback_idle_seconds: int  # a playback session ends after this long without a request
    playback_max_seconds: int  # and this long after it started, whatever happens (§12)
    workers: int | None = None
    oidc: OidcSettings | None = None  # sign-in through an identity provider (contract §15)
    roles_claim: str = "roles"
    customer_claim: str = "customer_id"

    @property
    def dev_key_file(self) -> Path:
        """Where dev mode keeps its signing key (never used outside dev mode)."""
        return self.data_dir / "dev-jwt-key.pem"

    @property
    def checkpoint_key_path(self) -> Path:
        return self.checkpoint_key_file or self.data_dir / "checkpoint-key.pem"


# Every key a gateway reads (contract §2). A key outside it is a typo that would otherwise be
# silently ignored (a misspelt JWT_ISSUER turns the issuer check off), so it stops start-up.
KEYS = frozenset(
    PREFIX + name
    for name in (
        *("CONFIG", "DATA_DIR", "STORAGE", "S3_ENDPOINT_URL", "DATABASE_URL", "REDIS_URL"),
        *("POLICY_DIR", "JWT_PUBLIC_KEY_FILE", "JWT_JWKS_URL", "JWT_ALGORITHMS", "JWT_ISSUER"),
        *("JWT_AUDIENCE", "JWT_LEEWAY", "DEV_MODE", "DELIVERY", "ACCEL_PREFIX", "HOST", "PORT"),
        *("RETENTION_DAYS", "GRANT_MAX_TTL", "ALERT_WEBHOOK", "TRUSTED_PROXIES", "LOG_FORMAT"),
        *("CHECKPOINT_KEY_FILE", "CHECKPOINT_RETIRED_KEYS", "CHECKPOINT_EVERY"),
        "CHECKPOINT_SECONDS",
        "UNAUTHENTICATED_PER_MINUTE",
        "WORKERS",
        "ACCESS_REQUEST_TTL",
        *("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET_FILE", "OIDC_REDIRECT_URI"),
        *("OIDC_SCOPES", "OIDC_RESOURCE", "OIDC_ROLES_CLAIM", "OIDC_CUSTOMER_CLAIM"),
        *("PLAYBACK_IDLE", "PLAYBACK_MAX"),
        *("NOTIFY_WEBHOOK", "NOTIFY_SECRET", "NOTIFY_EXPIRY_WARNING", "NOTIFY_TIMEOUT"),
        *("NOTIFY_MAX_ATTEMPTS", "NOTIFY_BACKOFF", "NOTIFY_BACKOFF_MAX", "NOTIFY_POLL"),
    )
)
# The test suite's own knobs share the prefix but are never the gateway's (contract §2).
TOOLING_KEYS = frozenset({f"{PREFIX}SOAK_SECONDS", f"{PREFIX}SCREENSHOTS_DIR"})
TOOLING_PREFIX = f"{PREFIX}TEST_"
MAX_LEEWAY_SECONDS = 30
MAX_WORKERS = 64
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_CLAIM_PATH = re.compile(r"[A-Za-z0-9_:/-]+(?:\.[A-Za-z0-9_:/-]+)*", re.ASCII)


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Build Settings from the environment and (if named) a TOML file; the environment wins."""
    env = dict(os.environ if environ is None else environ)
    file_name = config_file or env.get(f"{PREFIX}CONFIG")
    values: dict[str, str] = _read_toml(Path(file_name)) if file_name else {}
    from_env = {k: v for k, v in env.items() if k.startswith(PREFIX)}
    _refuse_unknown(from_env, "the environment")
    values.update(from_env)
    return _build(_Reader(values))


def _refuse_unknown(values: Mapping[str, str], where: str) -> None:
    for key in sorted(values):
        if key in KEYS or key in TOOLING_KEYS or key.startswith(TOOLING_PREFIX):
            continue
        close = difflib.get_close_matches(key, sorted(KEYS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(key, f"unknown setting in {where}{hint}")


def _read_toml(path: Path) -> dict[str, str]:
    key = f"{PREFIX}CONFIG"
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"{path} is not valid TOML: {exc}") from exc
    out: dict[str, str] = {}
    for name, value in raw.items():
        full = name.upper() if name.upper().startswith(PREFIX) else PREFIX + name.upper()
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "1" if value else "0"
        out[full] = str(value)
    _refuse_unknown(out, str(path))
    return out


class _Reader:
    """Typed access to the merged key/value map, each failure naming its key."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def text(self, name: str, default: str | None = None) -> str | None:
        value = str(self.values.get(PREFIX + name, "")).strip()
        return value or default

    def parse(self, name: str, convert: Callable[[str], T], default: T, what: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(PREFIX + name, f"expected {what}, got {raw!r}") from exc

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name, default) or default
        if value not in options:
            raise ConfigError(PREFIX + name, f"must be one of {', '.join(options)}, got {value!r}")
        return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _worker_count(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(raw)
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError(raw)
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _leeway(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= MAX_LEEWAY_SECONDS:
        raise ValueError(raw)
    return value


def _addresses(raw: str) -> tuple[str, ...]:
    """IP addresses and networks: uvicorn would take anything else as a literal never matched."""
    names = _csv(raw)
    for name in names:
        if "/" in name:
            ipaddress.ip_network(name)  # ValueError, host bits set included
        else:
            ipaddress.ip_address(name)
    return names


def _redis_url(read: _Reader) -> str | None:
    url = read.text("REDIS_URL")
    if url is not None and not url.startswith(REDIS_SCHEMES):
        raise ConfigError(
            f"{PREFIX}REDIS_URL", "must be redis://, rediss:// (TLS) or unix:// (a socket)"
        )
    return url


def _build(read: _Reader) -> Settings:
    data_dir = Path(read.text("DATA_DIR", "./var") or "./var")
    storage = read.text("STORAGE") or f"file://{data_dir / 'footage'}"
    if not storage.startswith(("file://", "s3://")) or storage in ("file://", "s3://"):
        raise ConfigError(f"{PREFIX}STORAGE", f"must be file://DIR or s3://BUCKET, got {storage!r}")
    database_url = read.text("DATABASE_URL") or f"sqlite:///{data_dir / 'gateway.db'}"
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        raise ConfigError(f"{PREFIX}DATABASE_URL", "must be sqlite:///PATH or postgresql://…")
    dev_mode = read.parse("DEV_MODE", _bool, False, "0 or 1")
    algorithms: tuple[str, ...] = read.parse(
        "JWT_ALGORITHMS", _csv, tuple(DEFAULT_ALGORITHMS), "a comma list"
    )
    _check_algorithms(algorithms, dev_mode)
    key_file = read.text("JWT_PUBLIC_KEY_FILE")
    jwks_url = read.text("JWT_JWKS_URL")
    if key_file and jwks_url:
        raise ConfigError(f"{PREFIX}JWT_JWKS_URL", "set either it or JWT_PUBLIC_KEY_FILE, not both")
    if key_file and not Path(key_file).is_file():
        raise ConfigError(f"{PREFIX}JWT_PUBLIC_KEY_FILE", f"no such file: {key_file}")
    if dev_mode and (key_file or jwks_url):
        # Dev mode trusts a key anyone with the data dir can use; beside a real key it would
        # quietly open a deployment to forged tokens (docs/deploy.md).
        which = "JWT_PUBLIC_KEY_FILE" if key_file else "JWT_JWKS_URL"
        raise ConfigError(f"{PREFIX}DEV_MODE", f"1 is refused beside FOOTGW_{which}: unset one")
    delivery = _delivery(read, storage)
    checkpoint_key = read.text("CHECKPOINT_KEY_FILE")
    oidc = read_oidc(read.text)
    jwt_issuer = read.text("JWT_ISSUER")
    if oidc is not None:
        jwt_issuer = _one_trust_path(oidc, jwt_issuer, key_file or jwks_url, dev_mode)
    return Settings(
        data_dir=data_dir,
        storage=storage,
        s3_endpoint_url=read.text("S3_ENDPOINT_URL"),
        database_url=database_url,
        redis_url=_redis_url(read),
        policy_dir=Path(read.text("POLICY_DIR") or REPO_POLICY_DIR),
        jwt_public_key_file=Path(key_file) if key_file else None,
        jwt_jwks_url=jwks_url,
        jwt_algorithms=algorithms,
        jwt_issuer=jwt_issuer,
        jwt_audience=read.text("JWT_AUDIENCE"),
        jwt_leeway_seconds=read.parse(
            "JWT_LEEWAY", _leeway, MAX_LEEWAY_SECONDS, f"0 to {MAX_LEEWAY_SECONDS} seconds"
        ),
        dev_mode=dev_mode,
        delivery=delivery,
        accel_prefix=_accel_prefix(read),
        retention_days=read.parse(
            "RETENTION_DAYS",
            _positive_int,
            cast(int | None, None),
            "a whole number of days above 0",
        ),
        host=read.text("HOST", "127.0.0.1") or "127.0.0.1",
        port=read.parse("PORT", _port, 8080, "a port number"),
        grant_max_ttl_seconds=read.parse(
            "GRANT_MAX_TTL", _positive_int, 7 * 86400, "a whole number of seconds above 0"
        ),
        access_request_ttl_seconds=read.parse(
            "ACCESS_REQUEST_TTL", _positive_int, 86400, "a whole number of seconds above 0"
        ),
        alert_webhook=read.text("ALERT_WEBHOOK"),
        trusted_proxies=read.parse(
            "TRUSTED_PROXIES", _addresses, (), "a comma list of IP addresses or networks"
        ),
        checkpoint_key_file=Path(checkpoint_key) if checkpoint_key else None,
        checkpoint_retired_keys=_existing_files(
            read.parse("CHECKPOINT_RETIRED_KEYS", _csv, (), "a comma list of PEM files")
        ),
        checkpoint_every_events=read.parse(
            "CHECKPOINT_EVERY", _positive_int, 1000, "a whole number of events above 0"
        ),
        checkpoint_every_seconds=read.parse("CHECKPOINT_SECONDS", float, 60.0, "seconds"),
        log_format=cast(
            Literal["json", "console", "auto"],
            read.choice("LOG_FORMAT", ("json", "console", "auto"), "auto"),
        ),
        unauthenticated_per_minute=read.parse(
            "UNAUTHENTICATED_PER_MINUTE", _positive_int, 60, "a whole number of requests above 0"
        ),
        workers=read.parse("WORKERS", _worker_count, None, f"1 to {MAX_WORKERS} processes"),
        oidc=oidc,
        roles_claim=_claim_path(read, "OIDC_ROLES_CLAIM", "roles"),
        customer_claim=_claim_path(read, "OIDC_CUSTOMER_CLAIM", "customer_id"),
        playback_idle_seconds=read.parse(
            "PLAYBACK_IDLE", _positive_int, 600, "a whole number of seconds above 0"
        ),
        playback_max_seconds=read.parse(
            "PLAYBACK_MAX", _positive_int, 7200, "a whole number of seconds above 0"
        ),
        notify=notify_settings(read),
    )


def _one_trust_path(
    oidc: OidcSettings, jwt_issuer: str | None, keys: str | None, dev_mode: bool
) -> str:
    """The provider's tokens are verified as every bearer token is: one issuer, one key set."""
    if jwt_issuer is not None and jwt_issuer != oidc.issuer:
        raise ConfigError(f"{PREFIX}JWT_ISSUER", "must be unset or equal FOOTGW_OIDC_ISSUER")
    if keys:  # the provider's discovery names its JWKS: no second source of keys
        raise ConfigError(
            f"{PREFIX}JWT_JWKS_URL", "set neither it nor JWT_PUBLIC_KEY_FILE beside OIDC_ISSUER"
        )
    if dev_mode:
        raise ConfigError(f"{PREFIX}DEV_MODE", "1 is refused beside FOOTGW_OIDC_ISSUER: unset one")
    return oidc.issuer


def _claim_path(read: _Reader, name: str, default: str) -> str:
    path = read.text(name, default) or default
    if not _CLAIM_PATH.fullmatch(path):
        raise ConfigError(PREFIX + name, f"must be a claim name or dotted path, got {path!r}")
    return path


def _delivery(read: _Reader, storage: str) -> DeliveryMode:
    """FOOTGW_DELIVERY, checked against the storage it needs."""
    delivery = DeliveryMode(read.choice("DELIVERY", tuple(DeliveryMode), DeliveryMode.PROXY))
    if delivery is DeliveryMode.REDIRECT and not storage.startswith("s3://"):
        raise ConfigError(f"{PREFIX}DELIVERY", "redirect needs s3:// storage")
    if delivery is DeliveryMode.ACCEL and storage.startswith("s3://"):
        # nginx serves the clip from its own view of the file tree (an `internal;` alias).
        raise ConfigError(f"{PREFIX}DELIVERY", "accel needs file:// storage that nginx can read")
    # accel does not require FOOTGW_TRUSTED_PROXIES: a caller who reaches the gateway directly
    # is authenticated, authorized and audited as ever and gets only an empty 200 whose
    # X-Accel-Redirect names ids they sent themselves; no footage leaves without nginx. Client
    # addresses in the audit log are a separate matter that TRUSTED_PROXIES already covers.
    return delivery


def _accel_prefix(read: _Reader) -> str:
    key = f"{PREFIX}ACCEL_PREFIX"
    prefix = read.text("ACCEL_PREFIX", DEFAULT_ACCEL_PREFIX) or DEFAULT_ACCEL_PREFIX
    if not _ACCEL_PREFIX.fullmatch(prefix):
        raise ConfigError(
            key, f"must start and end with / and hold plain path segments, got {prefix!r}"
        )
    return prefix


def _existing_files(names: tuple[str, ...]) -> tuple[Path, ...]:
    for name in names:
        if not Path(name).is_file():
            raise ConfigError(f"{PREFIX}CHECKPOINT_RETIRED_KEYS", f"no such file: {name}")
    return tuple(Path(name) for name in names)


def _check_algorithms(algorithms: tuple[str, ...], dev_mode: bool) -> None:
    key = f"{PREFIX}JWT_ALGORITHMS"
    if not algorithms:
        raise ConfigError(key, "names no algorithm")
    for name in algorithms:
        if name.lower() == "none":
            raise ConfigError(key, "'none' is never accepted")
        if name not in ASYMMETRIC_ALGORITHMS and not dev_mode:
            raise ConfigError(key, f"{name} is not an asymmetric algorithm (only in dev mode)")


def require_key_source(settings: Settings) -> None:
    """Serving needs a way to verify tokens: a key file, a JWKS URL, or dev mode's local key."""
    if not (settings.jwt_public_key_file or settings.jwt_jwks_url or settings.dev_mode):
        raise ConfigError(
            f"{PREFIX}JWT_PUBLIC_KEY_FILE",
            "set it or FOOTGW_JWT_JWKS_URL (FOOTGW_DEV_MODE=1 for a local dev key)",
        )
