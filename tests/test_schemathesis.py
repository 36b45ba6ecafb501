"""Schemathesis against the running gateway's own /openapi.json: no operation ever answers 5xx.

The schema is fetched from a real gateway (uvicorn on an ephemeral loopback port). Every
operation gets a bounded number of generated cases (a few hundred in all, well under a minute),
each sent with a valid token for one of the contract's roles, and half of the footage cases
pinned to a clip that exists so that ranges, purposes and justifications reach the deep end of
the flow. Findings that once were 500s are pinned below as plain regression tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.types import Zone
from tests.support.server import Live, make_env, start_live

CLIP = "20261127T101500Z.mp4"
EXAMPLES_PER_OPERATION = 25
BUDGET_SECONDS = 60


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = make_env(tmp_path_factory.mktemp("schemathesis"))
    env.set_zone("c1", "front", Zone.INDOOR)
    env.put_clip("c1", "front", CLIP, bytes(range(256)) * 256)
    with start_live(env) as running:
        grant = {
            "grantee": "role:support_agent",
            "purpose": "customer_support",
            "cameras": ["*"],
            "footage_from": "2026-11-01T00:00:00Z",
            "footage_until": "2026-11-30T00:00:00Z",
            "expires_at": (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticket": "CASE-1",
        }
        owner = env.auth("alice", "customer", customer_id="c1")
        assert running.client.post("/v1/grants", json=grant, headers=owner).status_code == 201
        yield running


def callers(live: Live, n: int = 0) -> dict[str, dict[str, str]]:
    """Valid tokens for each kind of caller. Staff subs vary with `n`: generated requests are
    mostly denials, and one principal's 20th denial would (rightly) get it suspended."""
    env = live.env
    return {
        "owner": env.auth("alice", "customer", customer_id="c1"),
        "other customer": env.auth("bob", "customer", customer_id="c2"),
        "agent": env.auth(f"sam-{n}", "support_agent"),
        "legal": env.auth(f"lena-{n}", "legal"),
        "analyst": env.auth(f"ana-{n}", "security_analyst"),
        "admin": env.auth(f"adam-{n}", "admin"),
        "nobody": {},
    }


def test_no_operation_answers_5xx(api: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every endpoint of the contract is described
    failures: list[str] = []
    sent = 0
    started = time.monotonic()

    def exercise(operation: Any) -> None:
        footage = operation.path.startswith("/v1/footage/") and operation.method in ("get", "head")

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(),
            caller=st.sampled_from(sorted(callers(api))),
            pin=st.booleans(),
        )
        def one_case(case: Any, caller: str, pin: bool) -> None:
            nonlocal sent
            if footage and pin:  # reach a clip that exists, with generated headers
                case.path_parameters.update(customer_id="c1", camera_id="front")
                if "clip_id" in case.path_parameters:
                    case.path_parameters["clip_id"] = CLIP
            headers = callers(api, sent)[caller]
            response = case.call(base_url=api.url, headers=headers, timeout=30)
            sent += 1
            if response.status_code >= 500:
                failures.append(
                    f"{operation.method.upper()} {case.formatted_path} as {caller}: "
                    f"{response.status_code} {response.text[:200]}"
                )

        one_case()

    for operation in operations:
        exercise(operation)
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {sent} requests over {len(operations)} operations in {elapsed:.1f}s")
    assert not failures, "\n".join(failures[:20])
    assert sent >= 150 and elapsed < BUDGET_SECONDS * 2


# Findings pinned: bodies whose JSON types the validators once indexed before checking them.
BAD_BODIES = [
    ("POST", "/v1/grants", {"purpose": ["customer_support"]}),
    ("POST", "/v1/grants", {"purpose": {"x": 1}}),
    ("PUT", "/v1/cameras/c1/front", {"zone": ["private"]}),
    ("PUT", "/v1/cameras/c1/front", {"zone": {"private": True}}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES)
def test_unhashable_json_values_are_400_not_500(
    api: Live, method: str, path: str, body: Any
) -> None:
    grant = {
        "grantee": "sam",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T23:59:59Z",
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticket": "CASE-1",
    }
    payload = {**grant, **body} if path == "/v1/grants" else body
    r = api.client.request(method, path, json=payload, headers=callers(api)["owner"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text


def test_the_schema_is_served_by_the_running_gateway(api: Live) -> None:
    spec = httpx.get(f"{api.url}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/footage/{customer_id}/{camera_id}/{clip_id}" in spec["paths"]
