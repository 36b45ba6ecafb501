"""Detection settings read from `policies/detection.toml`: thresholds, windows, working hours.

Every threshold is configurable (contract §8). A missing file means the contract's defaults; a
bad value stops start-up with a ConfigError that names the file and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError
from gateway.types import Severity

FILE_NAME = "detection.toml"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One rule's knobs. Window rules use flag_at / suspend_at; single-event rules neither."""

    severity: Severity
    window_minutes: float
    flag_at: int | None = None
    suspend_at: int | None = None
    enabled: bool = True

    @property
    def window_seconds(self) -> float:
        return self.window_minutes * 60.0


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """When staff are expected to work, in one time zone; off_hours flags the rest."""

    zone: tzinfo = UTC
    days: frozenset[int] = frozenset(range(5))  # Monday is 0, as datetime.weekday()
    start: time = time(7, 0)
    end: time = time(20, 0)  # exclusive; 24:00 is written as end = "24:00"
    end_of_day: bool = False

    def contains(self, moment: datetime) -> bool:
        """True when the moment falls inside working hours (in the configured zone)."""
        local = moment.astimezone(self.zone)
        if local.weekday() not in self.days:
            return False
        clock = local.time().replace(tzinfo=None)
        return self.start <= clock and (self.end_of_day or clock < self.end)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    timeout_seconds: float = 2.0
    retries: int = 3
    backoff_seconds: float = 0.5


DEFAULT_RULES: dict[str, RuleConfig] = {
    "customer_browsing": RuleConfig(Severity.HIGH, 60, flag_at=5, suspend_at=10),
    "bulk_viewing": RuleConfig(Severity.MEDIUM, 10, flag_at=31, suspend_at=101),
    "repeated_denials": RuleConfig(Severity.MEDIUM, 10, flag_at=5, suspend_at=20),
    "clip_probing": RuleConfig(Severity.MEDIUM, 10, flag_at=5, suspend_at=20),
    "private_zone_access": RuleConfig(Severity.MEDIUM, 60),
    "break_glass": RuleConfig(Severity.HIGH, 60),
    "legal_request": RuleConfig(Severity.MEDIUM, 60),
    "off_hours": RuleConfig(Severity.LOW, 60),
    # A break-glass review still open past its due time (policies/approvals.toml).
    "review_overdue": RuleConfig(Severity.HIGH, 60),
}
WINDOW_RULES = frozenset({"customer_browsing", "bulk_viewing", "repeated_denials", "clip_probing"})


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Every rule's configuration, the working hours and the alert delivery knobs."""

    rules: dict[str, RuleConfig] = field(default_factory=lambda: dict(DEFAULT_RULES))
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    alerts: AlertConfig = field(default_factory=AlertConfig)

    def rule(self, name: str) -> RuleConfig | None:
        """The rule's configuration when it is enabled, else None."""
        found = self.rules.get(name)
        return found if found is not None and found.enabled else None


def load_detection_config(policy_dir: Path) -> DetectionConfig:
    """The configuration in policy_dir/detection.toml, or the contract's defaults without one."""
    path = policy_dir / FILE_NAME
    if not path.is_file():
        return DetectionConfig()
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read detection rules: {exc}") from exc
    return parse_detection_config(raw, str(path))


def parse_detection_config(raw: dict[str, Any], source: str = FILE_NAME) -> DetectionConfig:
    """Build the configuration from parsed TOML; ConfigError names `source: key` on error."""
    reader = _Reader(source)
    rules = dict(DEFAULT_RULES)
    for name, table in reader.table(raw, "rules").items():
        if name not in DEFAULT_RULES:
            raise ConfigError(f"{source}: rules.{name}", "no such rule")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: rules.{name}", "must be a table")
        rules[name] = _rule(reader, f"rules.{name}", table, rules[name])
    return DetectionConfig(
        rules=rules,
        working_hours=_working_hours(reader, raw),
        alerts=_alerts(reader, reader.table(raw, "alerts")),
    )


def _rule(reader: _Reader, key: str, table: dict[str, Any], base: RuleConfig) -> RuleConfig:
    severity = table.get("severity", base.severity)
    if not isinstance(severity, str) or severity not in Severity._value2member_map_:
        raise ConfigError(f"{reader.source}: {key}.severity", "must be low, medium or high")
    rule = replace(
        base,
        severity=Severity(severity),
        window_minutes=reader.positive(table, key, "window_minutes", base.window_minutes),
        enabled=bool(table.get("enabled", base.enabled)),
    )
    if base.flag_at is None:
        return rule
    flag_at = int(reader.positive(table, key, "flag_at", base.flag_at))
    suspend_at = table.get("suspend_at", base.suspend_at)
    if suspend_at is not None:
        suspend_at = int(reader.positive(table, key, "suspend_at", suspend_at))
        if suspend_at < flag_at:
            raise ConfigError(f"{reader.source}: {key}.suspend_at", "must be at least flag_at")
    return replace(rule, flag_at=flag_at, suspend_at=suspend_at)


def _working_hours(reader: _Reader, raw: dict[str, Any]) -> WorkingHours:
    table = reader.table(raw, "working_hours")
    days = table.get("days", list(DAY_NAMES[:5]))
    if not isinstance(days, list) or any(d not in DAY_NAMES for d in days):
        raise ConfigError(f"{reader.source}: working_hours.days", f"names days of {DAY_NAMES}")
    end_text = str(table.get("end", "20:00"))
    return WorkingHours(
        zone=_zone(reader, raw.get("time_zone", "UTC")),
        days=frozenset(DAY_NAMES.index(d) for d in days),
        start=_clock(reader, "working_hours.start", str(table.get("start", "07:00"))),
        end=time(0, 0) if end_text == "24:00" else _clock(reader, "working_hours.end", end_text),
        end_of_day=end_text == "24:00",
    )


def _zone(reader: _Reader, name: Any) -> tzinfo:
    if name in ("UTC", "Z"):
        return UTC  # needs no time zone database
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{reader.source}: time_zone", f"unknown time zone {name!r}") from exc


def _clock(reader: _Reader, key: str, text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{reader.source}: {key}", f"expected HH:MM, got {text!r}") from exc


def _alerts(reader: _Reader, table: dict[str, Any]) -> AlertConfig:
    base = AlertConfig()
    return AlertConfig(
        timeout_seconds=reader.positive(table, "alerts", "timeout_seconds", base.timeout_seconds),
        retries=int(reader.positive(table, "alerts", "retries", base.retries)),
        backoff_seconds=reader.positive(table, "alerts", "backoff_seconds", base.backoff_seconds),
    )


class _Reader:
    """Typed access to the parsed TOML, each failure naming the file and key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def table(self, raw: dict[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.source}: {key}", "must be a table")
        return value

    def positive(self, table: dict[str, Any], key: str, name: str, default: float) -> float:
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{self.source}: {key}.{name}", f"must be positive, got {value!r}")
        return float(value)
