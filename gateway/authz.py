"""Authorization: the Casbin policy (role × purpose × action × zone) plus the grant check.

Casbin answers the small, static question "may this role, for this purpose, do this action in
this zone, and on what condition?". The per-customer question "did the owner grant it?" is
answered by a `GrantCheck` (gateway.grants.covering_grant in production) over the candidate
grants the request's facts brought along: indexed rows, never Casbin rows.

Deny by default: no matching rule is a denial, an explicit deny row beats any allow from any
of the caller's roles, and any exception raised while deciding is a denial (STYLE §3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import casbin
import structlog

from gateway.approvals import ApprovalsConfig, load_approvals
from gateway.types import (
    STAFF_ROLES,
    AccessRequest,
    Action,
    Decision,
    Principal,
    Purpose,
    Role,
    Zone,
)

if TYPE_CHECKING:
    from gateway.grants import Grant

log = structlog.get_logger("gateway.authz")

OWN_PURPOSE = "own"  # the pseudo-purpose of a customer reading their own footage
ADMIN_PURPOSE = "-"  # administrative actions are not footage requests
ANY_ZONE = "*"
BREAK_GLASS_MAX_TOKEN_SECONDS = 15 * 60
STAFF_APPROVAL = "staff"  # grants.approval of a grant made by staff approvers (contract §13)


class Cond:
    """What an allowing rule still requires (the policy's last column)."""

    OWNER = "owner"
    GRANT = "grant"
    JUSTIFIED = "justified"
    BREAK_GLASS = "break_glass"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Casbin's answer for one role: allowed or not, the rule that matched, its condition."""

    allowed: bool
    explicit: bool  # a row matched (an explicit deny, or an allow)
    rule: str
    cond: str


_Key = tuple[str, str, str, str]

# The grant check: (the request's candidate grants, the request, a role the policy allowed) ->
# Decision (allow with grant_id, or deny with no_grant / zone_restricted). One function answers
# it for every request and every test: gateway.grants.covering_grant.
GrantCheck = Callable[[Sequence["Grant"], AccessRequest, Role], Decision]


class PolicyEngine:
    """The Casbin enforcer over policies/, with a decision cache cleared on every reload."""

    def __init__(self, policy_dir: Path) -> None:
        self.policy_dir = policy_dir
        # The enforcer and the cache of its answers live and die together: a reload swaps the
        # pair in one assignment, so an answer computed from the old policy can only ever be
        # stored in the old cache, never served after the swap.
        self._state: tuple[casbin.Enforcer, dict[_Key, RuleResult]] = (self._load(), {})
        # approvals.toml is policy too: loaded, checked and swapped with the Casbin files.
        self.approvals: ApprovalsConfig = load_approvals(policy_dir)

    def _load(self) -> casbin.Enforcer:
        enforcer = casbin.Enforcer(
            str(self.policy_dir / "model.conf"), str(self.policy_dir / "policy.csv")
        )
        if not enforcer.get_policy():
            raise ValueError(f"{self.policy_dir / 'policy.csv'} has no rules")
        return enforcer

    def reload(self) -> int:
        """Load the policy files again; on any error keep the last good policy and raise."""
        fresh = self._load()  # raises before anything changes
        approvals = load_approvals(self.policy_dir)
        self._state, self.approvals = (fresh, {}), approvals
        return len(fresh.get_policy())

    @property
    def rule_count(self) -> int:
        return len(self._state[0].get_policy())

    def rule_for(self, role: str, purpose: str, action: str, zone: str) -> RuleResult:
        """Casbin's answer for one role; cached, since the request space is small and closed."""
        enforcer, cache = self._state
        key = (role, purpose, action, zone)
        cached = cache.get(key)
        if cached is None:
            cached = cache[key] = _evaluate(enforcer, key)
        return cached

    def allows_purpose(self, purpose: str, roles: Iterable[Role] = STAFF_ROLES) -> bool:
        """Whether any of these staff roles may use `purpose` at all (some action, some zone):
        a grant for a purpose the policy denies to everyone could never be used (contract §5)."""
        return any(
            self.rule_for(role, purpose, action, zone).allowed
            for role in sorted(STAFF_ROLES.intersection(roles))
            for action in Action
            for zone in Zone
        )

    def may(self, principal: Principal, action: str) -> Decision:
        """An administrative permission (audit.read, flags.manage, …) from any of the roles."""
        results = [self.rule_for(r, ADMIN_PURPOSE, action, ANY_ZONE) for r in principal.known_roles]
        denied = next((r for r in results if r.explicit and not r.allowed), None)
        if denied:
            return Decision.deny("forbidden", denied.rule)
        allowed = next((r for r in results if r.allowed), None)
        if allowed:
            return Decision.allow(action, allowed.rule)
        return Decision.deny("forbidden")


class Authorizer:
    """Decides footage requests: owner path, then each staff role under deny-wins."""

    def __init__(self, policy: PolicyEngine, grant_check: GrantCheck) -> None:
        self.policy = policy
        self.grant_check = grant_check

    def decide(self, request: AccessRequest, grants: Sequence[Grant]) -> Decision:
        """The decision for one footage request, with its reason; exceptions deny.

        `grants` are the request's candidate grants, read with its other facts (facts.py);
        nothing outlives the request, so a revocation counts from the next request on.
        """
        try:
            return self._decide(request, grants)
        except Exception as exc:
            log.error("authorization_failed", error=str(exc))
            return Decision.deny("forbidden", "error")

    def _decide(self, request: AccessRequest, grants: Sequence[Grant]) -> Decision:
        roles = request.principal.known_roles
        if not roles:
            return Decision.deny("forbidden")
        if Role.CUSTOMER in roles and self._owns(request):
            own = self.policy.rule_for(Role.CUSTOMER, OWN_PURPOSE, request.action, request.zone)
            if own.allowed and own.cond == Cond.OWNER:
                return Decision.allow("owner", own.rule)
        staff = sorted(roles & STAFF_ROLES)
        if not staff:
            return Decision.deny("not_owner")
        if request.purpose is None:
            return Decision.deny("purpose_required")
        if not request.justification:
            return Decision.deny("justification_required")
        return self._decide_staff(request, staff, grants)

    @staticmethod
    def _owns(request: AccessRequest) -> bool:
        return request.principal.customer_id == request.camera.customer_id

    def _decide_staff(
        self, request: AccessRequest, staff: list[Role], grants: Sequence[Grant]
    ) -> Decision:
        assert request.purpose is not None
        results = {
            role: self.policy.rule_for(role, request.purpose, request.action, request.zone)
            for role in staff
        }
        denied = next((r for r in results.values() if r.explicit and not r.allowed), None)
        if denied:  # deny wins over every allow from any other role
            return Decision.deny("purpose_not_permitted", denied.rule)
        misses: list[Decision] = []
        for role, result in results.items():
            if not result.allowed:
                continue
            decision = self._apply_condition(request, role, result, grants)
            if decision:
                return decision
            misses.append(decision)
        if misses:
            return _most_specific(misses)
        return Decision.deny(self._why_no_rule(request, staff))

    def _apply_condition(
        self, request: AccessRequest, role: Role, result: RuleResult, grants: Sequence[Grant]
    ) -> Decision:
        if self.policy.approvals.staff_approval(request.purpose) is not None:
            return self._staff_approved(request, role, result, grants)
        if result.cond == Cond.GRANT:
            decision = self.grant_check(grants, request, role)
            rule = result.rule
            if decision:
                return Decision.allow("grant", rule, decision.grant_id)
            return Decision.deny(decision.reason, rule)
        if result.cond == Cond.JUSTIFIED:
            return Decision.allow(str(request.purpose), result.rule)
        if result.cond == Cond.BREAK_GLASS:
            if _token_is_short_lived(request.principal, request.now):
                return Decision.allow("break_glass", result.rule)
            return Decision.deny("purpose_not_permitted", result.rule)
        return Decision.deny("forbidden", result.rule)  # an unknown condition never allows

    def _staff_approved(
        self, request: AccessRequest, role: Role, result: RuleResult, grants: Sequence[Grant]
    ) -> Decision:
        """A purpose in approvals.toml: only a grant its staff approvers made counts, whatever
        the rule's condition (a justification alone, or a customer's grant, is not enough)."""
        if result.cond not in (Cond.GRANT, Cond.JUSTIFIED):
            return Decision.deny("forbidden", result.rule)
        approved = [g for g in grants if g.approval == STAFF_APPROVAL]
        decision = self.grant_check(approved, request, role)
        if decision:
            return Decision.allow(str(request.purpose), result.rule, decision.grant_id)
        reason = "zone_restricted" if decision.reason == "zone_restricted" else "approval_required"
        return Decision.deny(reason, result.rule)

    def _why_no_rule(self, request: AccessRequest, staff: list[Role]) -> str:
        """Name the closest miss: the purpose is fine but not in this zone, or not at all."""
        assert request.purpose is not None
        for role in staff:
            for zone in Zone:
                if self.policy.rule_for(role, request.purpose, request.action, zone).allowed:
                    return "zone_restricted"
        return "purpose_not_permitted" if _has_footage_rules(self.policy, staff) else "forbidden"


def _evaluate(enforcer: casbin.Enforcer, key: _Key) -> RuleResult:
    try:
        allowed, explain = enforcer.enforce_ex(*key)
    except Exception as exc:  # a broken matcher or value denies; never allows
        log.error("policy_evaluation_failed", request=key, error=str(exc))
        return RuleResult(False, False, "", Cond.NONE)
    if not explain:
        return RuleResult(False, False, "", Cond.NONE)
    return RuleResult(bool(allowed), True, ", ".join(explain), explain[-1])


def _has_footage_rules(policy: PolicyEngine, staff: list[Role]) -> bool:
    return any(
        policy.rule_for(role, purpose, Action.VIEW, zone).allowed
        for role in staff
        for purpose in Purpose
        for zone in Zone
    )


def _most_specific(misses: list[Decision]) -> Decision:
    # A grant that exists but excludes private cameras says more than "no grant at all".
    for decision in misses:
        if decision.reason not in ("no_grant", "approval_required"):
            return decision
    return misses[0]


def _token_is_short_lived(principal: Principal, now: datetime) -> bool:
    """Break-glass needs a token *issued* for at most 15 minutes (`exp - iat`), still unexpired.

    A stolen one is worth little for long. Time left is not enough: any long-lived token spends
    its last 15 minutes looking short. With no `iat` the lifetime is unknown, so it is refused.
    """
    if principal.issued_at is None:
        return False
    lifetime = principal.expires_at - principal.issued_at
    return 0 < lifetime <= BREAK_GLASS_MAX_TOKEN_SECONDS and principal.expires_at > now.timestamp()
