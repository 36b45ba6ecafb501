"""Who signs off what the customer does not: `policies/approvals.toml` (contract §13).

The file names the purposes whose access requests are approved by staff instead of by the
customer, how many distinct approvers each needs (`approvals = N`) and from which roles, and how
soon a break-glass review must be closed. It is data, like the Casbin policy: loaded with it,
checked at start-up and on every hot reload (a bad file stops start-up naming the key, and a
reload keeps the last good one). A missing file means the defaults below.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.types import Purpose, Role

FILE_NAME = "approvals.toml"
MAX_APPROVALS = 10


@dataclass(frozen=True, slots=True)
class StaffApproval:
    """A purpose approved by staff: `approvals` distinct people holding one of `roles`."""

    approvals: int
    roles: frozenset[Role]


@dataclass(frozen=True, slots=True)
class ApprovalsConfig:
    """Every purpose that staff approve, and the break-glass review deadline."""

    purposes: dict[str, StaffApproval] = field(
        default_factory=lambda: {
            Purpose.LEGAL_REQUEST: StaffApproval(1, frozenset({Role.LEGAL_APPROVER}))
        }
    )
    review_within_hours: float = 24.0
    check_every_seconds: float = 60.0

    def staff_approval(self, purpose: str | None) -> StaffApproval | None:
        """The staff approval this purpose needs, or None (the customer approves)."""
        return self.purposes.get(purpose) if purpose is not None else None

    @property
    def staff_purposes(self) -> frozenset[str]:
        return frozenset(self.purposes)


def load_approvals(policy_dir: Path) -> ApprovalsConfig:
    """policy_dir/approvals.toml, or the defaults without one; ConfigError names the key."""
    path = policy_dir / FILE_NAME
    if not path.is_file():
        return ApprovalsConfig()
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read approvals: {exc}") from exc
    return parse_approvals(raw, str(path))


def parse_approvals(raw: dict[str, Any], source: str = FILE_NAME) -> ApprovalsConfig:
    """Build the configuration from parsed TOML; unknown keys are mistakes, named."""
    _only(raw, {"purposes", "break_glass", "reviews"}, source, "")
    purposes = {
        name: _purpose(name, table, source)
        for name, table in _table(raw, "purposes", source).items()
    }
    break_glass = _table(raw, "break_glass", source)
    _only(break_glass, {"review_within_hours"}, source, "break_glass.")
    reviews = _table(raw, "reviews", source)
    _only(reviews, {"check_every_seconds"}, source, "reviews.")
    return ApprovalsConfig(
        purposes=purposes,
        review_within_hours=_positive(break_glass, "review_within_hours", 24.0, source),
        check_every_seconds=_positive(reviews, "check_every_seconds", 60.0, source),
    )


def _purpose(name: str, table: Any, source: str) -> StaffApproval:
    key = f"{source}: purposes.{name}"
    if name not in Purpose._value2member_map_ or name in (Purpose.EMERGENCY, "model_training"):
        raise ConfigError(key, "names no purpose a request can ask for")
    if not isinstance(table, dict):
        raise ConfigError(key, "must be a table")
    _only(table, {"approvals", "roles"}, source, f"purposes.{name}.")
    count = table.get("approvals", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_APPROVALS:
        raise ConfigError(f"{key}.approvals", f"must be a whole number from 1 to {MAX_APPROVALS}")
    roles = table.get("roles")
    staff = {str(r) for r in Role} - {Role.CUSTOMER}
    if not isinstance(roles, list) or not roles or any(r not in staff for r in roles):
        raise ConfigError(f"{key}.roles", "must list staff roles: " + ", ".join(sorted(staff)))
    return StaffApproval(count, frozenset(Role(r) for r in roles))


def _table(raw: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {name}", "must be a table")
    return value


def _only(table: dict[str, Any], known: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{source}: {prefix}{unknown[0]}", "no such key")


def _positive(table: dict[str, Any], name: str, default: float, source: str) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{source}: {name}", f"must be a positive number, got {value!r}")
    return float(value)
