"""FOOTGW_NOTIFY_*: the outbox's delivery settings (contract §2 and §14), read by settings.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gateway.errors import ConfigError
from gateway.notify.signing import check_secret

PREFIX = "FOOTGW_"
T = TypeVar("T")


class Reader(Protocol):
    """settings._Reader: typed access to the merged settings, each failure naming its key."""

    def text(self, name: str, default: str | None = None) -> str | None: ...

    def parse(self, name: str, convert: Callable[[str], T], default: T, what: str) -> T: ...


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The outbox's delivery (contract §14): where, signed how, how patiently."""

    webhook: str | None
    secret: str | None
    expiry_warning_seconds: int  # 0: no grant.expiring notifications
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    poll_seconds: float


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not 0 < value < float("inf"):
        raise ValueError(raw)
    return value


def _seconds_or_zero(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def notify_settings(read: Reader) -> NotifySettings:
    """FOOTGW_NOTIFY_*: a webhook needs a Standard Webhooks secret (whsec_…) to sign with."""
    webhook = read.text("NOTIFY_WEBHOOK")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError(f"{PREFIX}NOTIFY_WEBHOOK", "must be an http:// or https:// URL")
    secret = read.text("NOTIFY_SECRET")
    if secret is not None:
        try:
            check_secret(secret)
        except ValueError as exc:
            # Never the value itself in the message: it is a secret.
            raise ConfigError(f"{PREFIX}NOTIFY_SECRET", str(exc)) from None
    if webhook is not None and secret is None:
        raise ConfigError(f"{PREFIX}NOTIFY_SECRET", "is required with FOOTGW_NOTIFY_WEBHOOK")
    seconds = "a number of seconds above 0"
    return NotifySettings(
        webhook=webhook,
        secret=secret,
        expiry_warning_seconds=read.parse(
            "NOTIFY_EXPIRY_WARNING", _seconds_or_zero, 3600, "a whole number of seconds (0: off)"
        ),
        timeout_seconds=read.parse("NOTIFY_TIMEOUT", _positive_float, 10.0, seconds),
        max_attempts=read.parse(
            "NOTIFY_MAX_ATTEMPTS", _positive_int, 12, "a whole number of attempts above 0"
        ),
        backoff_seconds=read.parse("NOTIFY_BACKOFF", _positive_float, 5.0, seconds),
        backoff_max_seconds=read.parse("NOTIFY_BACKOFF_MAX", _positive_float, 3600.0, seconds),
        poll_seconds=read.parse("NOTIFY_POLL", _positive_float, 1.0, seconds),
    )
