"""A hypothesis invariant over access requests (contract §13), on the real stores and policy.

Over random sequences of asks, approvals, denials, cancellations, customer grants and views by
a cast of customers and staff, every allowed staff view has a legitimate path: a grant the
customer made or approved (not the requester approving themselves), a grant from a request
that N distinct staff approvers (none the requester) approved for a staff-approved purpose, or
break-glass. An independent model also predicts every answer (approved, refused, pending), and
the service must agree with it.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import migrations
from gateway.access_requests.models import parse_new_request
from gateway.access_requests.service import AccessRequests
from gateway.access_requests.store import AccessRequestStore
from gateway.approvals import ApprovalsConfig, StaffApproval
from gateway.audit.events import new_event
from gateway.audit.log import AuditLog
from gateway.audit.store import AuditStore
from gateway.authz import Authorizer, PolicyEngine
from gateway.db import create_db_engine
from gateway.errors import GatewayError
from gateway.grants import Grant, GrantStore, covering_grant, grantee_names
from gateway.types import (
    AccessRequest,
    Action,
    CameraRef,
    EventType,
    Principal,
    Purpose,
    Role,
    Zone,
)

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
FOOTAGE_FROM = datetime(2026, 11, 27, tzinfo=UTC)
RECORDED = datetime(2026, 11, 27, 10, tzinfo=UTC)
CAMERAS = ("front", "back")
TICKETS = ("T-1", "T-2")
PURPOSES = (Purpose.CUSTOMER_SUPPORT, Purpose.SAFETY_INVESTIGATION, Purpose.LEGAL_REQUEST)
STAFF_PURPOSE = Purpose.LEGAL_REQUEST
NEEDED = 2  # the two-person rule, as approvals.toml could say


def _principal(sub: str, *roles: str, customer_id: str | None = None) -> Principal:
    now = datetime.now(UTC).timestamp()
    return Principal(sub, frozenset(roles), customer_id, now + 600, now)


CAST = {
    "alice": _principal("alice", "customer", customer_id="c1"),  # owns the footage
    "bob": _principal("bob", "customer", customer_id="c2"),  # another customer
    "sam": _principal("sam", "support_agent"),
    "tia": _principal("tia", "trust_safety"),
    "lou": _principal("lou", "legal"),
    "val": _principal("val", "legal_approver"),
    "vic": _principal("vic", "legal_approver"),
    "lex": _principal("lex", "legal", "legal_approver"),  # may ask, and approve others' asks
    "sly": _principal("sly", "support_agent", "customer", customer_id="c1"),  # both sides
    "lee": _principal("lee", "support_lead"),
}
ASKERS = ("sam", "tia", "lou", "lex", "sly", "lee")
VIEWERS = ("sam", "tia", "lou", "lex", "sly", "lee", "val")

ask_op = st.tuples(
    st.just("ask"),
    st.sampled_from(ASKERS),
    st.sampled_from(PURPOSES),
    st.sampled_from(CAMERAS),
    st.sampled_from(TICKETS),
)
answer_op = st.tuples(
    st.sampled_from(["approve", "deny", "cancel"]), st.integers(0, 5), st.sampled_from(sorted(CAST))
)
grant_op = st.tuples(
    st.just("grant"),
    st.sampled_from(VIEWERS),
    st.sampled_from(PURPOSES),
    st.sampled_from(CAMERAS),
    st.sampled_from(TICKETS),
)
view_op = st.tuples(
    st.just("view"),
    st.sampled_from(VIEWERS),
    st.sampled_from([*PURPOSES, Purpose.EMERGENCY]),
    st.sampled_from(CAMERAS),
    st.sampled_from(TICKETS),
)
operations = st.lists(st.one_of(ask_op, answer_op, grant_op, view_op), min_size=1, max_size=25)


@dataclass
class Asked:
    request_id: str
    requester: str
    purpose: str
    camera: str
    ticket: str
    staff: bool
    state: str = "pending"
    approvers: list[str] = field(default_factory=list)


@dataclass
class Model:
    asked: list[Asked] = field(default_factory=list)
    # grant_id → how it came to be: ("customer", None) or ("request", the Asked)
    grants: dict[str, tuple[str, Asked | None]] = field(default_factory=dict)


def expected_answer(op: str, actor: Principal, asked: Asked) -> bool:
    """Whether this answer should change the request (the model of contract §13)."""
    if asked.state != "pending":
        return False
    if op == "cancel":
        return actor.sub == asked.requester
    if actor.sub == asked.requester:
        return False
    if not asked.staff:
        return Role.CUSTOMER in actor.known_roles and actor.customer_id == "c1"
    if Role.LEGAL_APPROVER not in actor.known_roles:
        return False
    return op == "deny" or actor.sub not in asked.approvers


@pytest.fixture(scope="module")
def engine_factory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    counter = iter(range(10**6))
    root = tmp_path_factory.mktemp("inv")
    template = root / "template.sqlite"
    migrated = create_db_engine(f"sqlite:///{template}")
    migrations.migrate(migrated)  # once: each example starts from a copy
    migrated.dispose()

    def make() -> Any:
        path = root / f"db{next(counter)}.sqlite"
        shutil.copyfile(template, path)
        return create_db_engine(f"sqlite:///{path}")

    return make


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_no_staff_view_without_a_legitimate_path(engine_factory: Any, ops: list[Any]) -> None:
    engine = engine_factory()
    try:
        asyncio.run(_run(engine, ops))
    finally:
        engine.dispose()


async def _run(engine: Any, ops: list[Any]) -> None:
    policy = PolicyEngine(REPO_POLICIES)
    policy.approvals = ApprovalsConfig(
        purposes={STAFF_PURPOSE: StaffApproval(NEEDED, frozenset({Role.LEGAL_APPROVER}))}
    )
    audit = AuditLog(AuditStore(engine))
    grant_store = GrantStore(engine)
    service = AccessRequests(AccessRequestStore(engine), grant_store, audit)
    authorizer = Authorizer(policy, covering_grant)
    model = Model()
    try:
        for op in ops:
            await _step(op, model, service, grant_store, authorizer, policy)
    finally:
        await audit.close()


def _make_event(actor: Principal) -> Any:
    def make(event_type: EventType, **fields: Any) -> Any:
        return new_event(event_type, principal=actor.sub, roles=sorted(actor.roles), **fields)

    return make


async def _step(
    op: Any,
    model: Model,
    service: AccessRequests,
    grant_store: GrantStore,
    authorizer: Authorizer,
    policy: PolicyEngine,
) -> None:
    kind = op[0]
    now = datetime.now(UTC)
    if kind == "ask":
        _, who, purpose, camera, ticket = op
        body = {
            "customer_id": "c1",
            "cameras": [camera],
            "purpose": str(purpose),
            "ticket": ticket,
            "footage_from": "2026-11-27T00:00:00Z",
            "footage_until": "2026-11-28T00:00:00Z",
            "reason": "fuzz",
            "duration_seconds": 600,
        }
        record = parse_new_request(
            body, CAST[who], now, ttl_seconds=3600, max_duration=86400, approvals=policy.approvals
        )
        await service.create(record, _make_event(CAST[who]))
        model.asked.append(
            Asked(record.request_id, who, purpose, camera, ticket, purpose == STAFF_PURPOSE)
        )
    elif kind in ("approve", "deny", "cancel") and model.asked:
        _, index, who = op
        asked = model.asked[index % len(model.asked)]
        await _answer(kind, CAST[who], asked, model, service)
    elif kind == "grant":
        _, grantee, purpose, camera, ticket = op
        grant = Grant(
            grant_id=f"gr_direct{len(model.grants)}",
            customer_id="c1",
            grantee=grantee,
            purpose=str(purpose),
            cameras=(camera,),
            footage_from=FOOTAGE_FROM,
            footage_until=FOOTAGE_FROM + timedelta(days=1),
            expires_at=now + timedelta(hours=1),
            ticket=ticket,
            include_private=False,
            created_at=now,
            created_by="alice",
        )
        grant_store.create(grant)
        model.grants[grant.grant_id] = ("customer", None)
    elif kind == "view":
        _, who, purpose, camera, ticket = op
        _check_view(CAST[who], purpose, camera, ticket, model, grant_store, authorizer)


async def _answer(
    kind: str, actor: Principal, asked: Asked, model: Model, service: AccessRequests
) -> None:
    should = expected_answer(kind, actor, asked)
    make = _make_event(actor)
    try:
        if kind == "approve":
            answer = await service.approve(actor, asked.request_id, None, make)
            asked.approvers.append(actor.sub)
            if answer.grant is not None:
                asked.state = "approved"
                model.grants[answer.grant.grant_id] = ("request", asked)
            else:
                assert asked.staff and len(asked.approvers) < NEEDED
        elif kind == "deny":
            await service.deny(actor, asked.request_id, None, make)
            asked.state = "denied"
        else:
            await service.cancel(actor, asked.request_id, make)
            asked.state = "cancelled"
    except GatewayError as exc:
        assert not should, f"{kind} by {actor.sub} refused: {exc.code} {exc.message}"
        return
    assert should, f"{kind} by {actor.sub} of {asked} should have been refused"
    if kind == "approve" and asked.state == "approved":
        assert len(asked.approvers) >= (NEEDED if asked.staff else 1)


def _check_view(
    actor: Principal,
    purpose: str,
    camera: str,
    ticket: str,
    model: Model,
    grant_store: GrantStore,
    authorizer: Authorizer,
) -> None:
    now = datetime.now(UTC)
    request = AccessRequest(
        principal=actor,
        action=Action.VIEW,
        camera=CameraRef("c1", camera),
        zone=Zone.OUTDOOR,
        purpose=Purpose(purpose),
        justification=f"{ticket} fuzz",
        recorded_at=RECORDED,
        now=now,
    )
    names = grantee_names(actor.sub, sorted(actor.known_roles))
    decision = authorizer.decide(request, grant_store.candidates(names, "c1", now))
    if not decision:
        return
    if decision.reason == "owner":  # not a staff view: a customer of c1 reads their own
        assert actor.customer_id == "c1"
        return
    if decision.reason == "break_glass":
        assert purpose == Purpose.EMERGENCY
        assert actor.known_roles & {Role.SUPPORT_LEAD, Role.TRUST_SAFETY}
        return
    assert decision.grant_id in model.grants, f"allowed without a known grant: {decision}"
    origin, asked = model.grants[decision.grant_id]
    grant = grant_store.get(decision.grant_id)
    assert grant.grantee in names and grant.purpose == purpose and grant.ticket == ticket
    if purpose == STAFF_PURPOSE:
        # Only the staff path: N distinct legal approvers, none of them the requester.
        assert origin == "request" and asked is not None and asked.staff
        assert len(set(asked.approvers)) >= NEEDED and asked.requester not in asked.approvers
        assert grant.approval == "staff"
        return
    if origin == "request":
        assert asked is not None and not asked.staff and asked.state == "approved"
        assert asked.requester == actor.sub and asked.requester not in asked.approvers
        assert asked.approvers and all(CAST[a].customer_id == "c1" for a in asked.approvers)
