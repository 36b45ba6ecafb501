"""`footage-gateway policy check`: what the policy says for one role, purpose and zone, and why."""

from __future__ import annotations

from pathlib import Path

from gateway.authz import Cond, PolicyEngine, RuleResult
from gateway.types import Zone

CONDITION_TEXT = {
    Cond.OWNER: "only on the caller's own footage",
    Cond.GRANT: "only under an active grant from the owner",
    Cond.JUSTIFIED: "with a justification; flagged for review",
    Cond.BREAK_GLASS: "break-glass: short-lived token; flagged high",
    Cond.NONE: "no further condition",
}


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
