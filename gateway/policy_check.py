"""`footage-gateway policy check`: what the policy says for one role, purpose and zone, and why."""

from __future__ import annotations

import difflib
from enum import StrEnum
from pathlib import Path

from gateway.authz import Cond, PolicyEngine, RuleResult
from gateway.types import Action, Purpose, Role, Zone

CONDITION_TEXT = {
    Cond.OWNER: "only on the caller's own footage",
    Cond.GRANT: "only under an active grant from the owner",
    Cond.JUSTIFIED: "with a justification; flagged for review",
    Cond.BREAK_GLASS: "break-glass: short-lived token; flagged high",
    Cond.NONE: "no further condition",
}


def unknown_term(role: str, purpose: str, zone: str, action: str) -> str | None:
    """A sentence naming the first term outside our closed sets (and the closest), or None."""
    asked: tuple[tuple[str, str, type[StrEnum]], ...] = (
        ("role", role, Role),
        ("purpose", purpose, Purpose),
        ("zone", zone, Zone),
        ("action", action, Action),
    )
    for what, value, known in asked:
        names = [str(member) for member in known]
        if value not in names:
            close = difflib.get_close_matches(value, names, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            return f"unknown {what} {value!r}{hint} (one of: {', '.join(names)})"
    return None


def explain(
    policy_dir: Path,
    role: str,
    purpose: str,
    zone: str,
    action: str = "view",
    *,
    grant: bool = False,
    include_private: bool = False,
) -> tuple[bool, str]:
    """(allowed, one line saying allow or deny, the rule that decided, and the condition)."""
    result = PolicyEngine(policy_dir).rule_for(role, purpose, action, zone)
    if not result.explicit:
        return False, "deny: no rule matches (deny by default)"
    if not result.allowed:
        return False, f"deny: rule [{result.rule}]"
    return _condition(result, zone, grant, include_private)


def _condition(
    result: RuleResult, zone: str, grant: bool, include_private: bool
) -> tuple[bool, str]:
    where = f"rule [{result.rule}], {CONDITION_TEXT.get(result.cond, result.cond)}"
    if result.cond != Cond.GRANT:
        return True, f"allow: {where}"
    if not grant:
        return False, f"deny (no_grant): {where}; pass --grant to assume one"
    if zone == Zone.PRIVATE and not include_private:
        return False, f"deny (zone_restricted): {where}; private needs include_private"
    return True, f"allow: {where}"
