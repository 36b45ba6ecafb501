"""policies/approvals.toml (contract §13): parsed strictly, defaults without it, refused at
start-up naming the key, and swapped with the policy on a reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.approvals import ApprovalsConfig, load_approvals, parse_approvals
from gateway.authz import PolicyEngine
from gateway.errors import ConfigError
from gateway.preflight import _policy_dir
from gateway.types import Role

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_the_shipped_file_is_the_documented_default() -> None:
    shipped = load_approvals(REPO_POLICIES)
    assert shipped == ApprovalsConfig()
    legal = shipped.staff_approval("legal_request")
    assert legal is not None and legal.approvals == 1
    assert legal.roles == frozenset({Role.LEGAL_APPROVER})
    assert shipped.staff_approval("customer_support") is None
    assert shipped.review_within_hours == 24


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_approvals(tmp_path) == ApprovalsConfig()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"purposes": {"emergency": {"approvals": 1, "roles": ["legal"]}}}, "purposes.emergency"),
        ({"purposes": {"gossip": {"approvals": 1, "roles": ["legal"]}}}, "purposes.gossip"),
        ({"purposes": {"legal_request": {"approvals": 0, "roles": ["legal"]}}}, "approvals"),
        ({"purposes": {"legal_request": {"approvals": True, "roles": ["legal"]}}}, "approvals"),
        ({"purposes": {"legal_request": {"roles": ["customer"]}}}, "roles"),
        ({"purposes": {"legal_request": {"roles": []}}}, "roles"),
        ({"purposes": {"legal_request": {"roles": ["legal"], "quorum": 2}}}, "quorum"),
        ({"break_glass": {"review_within_hours": 0}}, "review_within_hours"),
        ({"reviews": {"check_every_seconds": "often"}}, "check_every_seconds"),
        ({"approval": {}}, "approval"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_approvals(raw, "approvals.toml")
    assert key in str(refused.value)


def test_two_approvers_from_two_roles_parse() -> None:
    raw = {"purposes": {"safety_investigation": {"approvals": 2, "roles": ["legal", "admin"]}}}
    parsed = parse_approvals(raw)
    needed = parsed.staff_approval("safety_investigation")
    assert needed is not None and needed.approvals == 2
    assert parsed.staff_approval("legal_request") is None  # named purposes only


def copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO_POLICIES, target)
    return target


def test_start_up_refuses_a_bad_file_naming_the_policy_dir(tmp_path: Path) -> None:
    policies = copy_policies(tmp_path)
    (policies / "approvals.toml").write_text("[purposes.legal_request]\napprovals = 99\n")
    with pytest.raises(ConfigError) as refused:
        _policy_dir(policies)
    assert "FOOTGW_POLICY_DIR" in str(refused.value) and "approvals" in str(refused.value)


def test_a_reload_swaps_the_approvals_with_the_policy_and_a_bad_one_keeps_the_last(
    tmp_path: Path,
) -> None:
    policies = copy_policies(tmp_path)
    engine = PolicyEngine(policies)
    (policies / "approvals.toml").write_text(
        '[purposes.legal_request]\napprovals = 2\nroles = ["legal_approver"]\n'
    )
    engine.reload()
    legal = engine.approvals.staff_approval("legal_request")
    assert legal is not None and legal.approvals == 2
    (policies / "approvals.toml").write_text("[purposes.legal_request]\napprovals = -1\n")
    with pytest.raises(ConfigError):
        engine.reload()
    legal = engine.approvals.staff_approval("legal_request")
    assert legal is not None and legal.approvals == 2  # the last good one stands


def test_editing_the_file_changes_the_fingerprint_the_watcher_reloads_on(tmp_path: Path) -> None:
    from gateway.cluster.policy_watch import fingerprint

    policies = copy_policies(tmp_path)
    before = fingerprint(policies)
    (policies / "approvals.toml").write_text("[break_glass]\nreview_within_hours = 4\n")
    edited = fingerprint(policies)
    (policies / "approvals.toml").unlink()
    assert len({before, edited, fingerprint(policies)}) == 3  # absent is a change too
