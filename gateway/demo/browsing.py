"""`footage-gateway demo --scenario browsing`: replay the case that started this product.

Twelve customers each grant the support role access to their porch camera for a ticket of
their own. One support agent then opens one clip of each customer in turn, citing each
customer's ticket (a justification that looks fine request by request). Detection raises a
`customer_browsing` flag at the 5th customer and suspends the agent at the 10th; the 11th
request is refused 403 `principal_suspended`.

The sweep runs in-process (the real app and its lifespan over ASGI, on the demo's data dir)
before the demo server starts, so the analyst's curl lines printed at the end show the flag,
the suspension and the evidence events on the running gateway.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from gateway.app import create_app, in_process
from gateway.demo.seeding import DemoCamera, seed
from gateway.demo.tokens import dev_token
from gateway.settings import Settings
from gateway.types import RECORDED_AT_FORMAT, Role, Zone

CUSTOMERS = 12
AGENT = "eve@support"
CAMERA = "porch"


@dataclass
class Step:
    """One request of the sweep and what the gateway answered."""

    customer_id: str
    status: int
    code: str = ""
    flags: list[str] = field(default_factory=list)  # rules of open flags on the agent after it


@dataclass
class BrowsingResult:
    steps: list[Step]
    flags: list[dict[str, Any]]
    principal: dict[str, Any]


def run_scenario(settings: Settings, minted: dict[str, str], now: datetime) -> None:
    """Run the sweep and print what happened and how an analyst can see it."""
    agent_token = dev_token(settings, AGENT, [Role.SUPPORT_AGENT])
    result = asyncio.run(run_browsing(settings, agent_token, minted["ANA"], now))
    base = f"http://{settings.host}:{settings.port}"
    print(report(result, base, agent_token), flush=True)


def customer_ids() -> list[str]:
    return [f"cust-{i:02d}" for i in range(1, CUSTOMERS + 1)]


def clip_id_for(now: datetime) -> str:
    """One clip recorded yesterday at noon (UTC): inside every grant's footage window."""
    day = (now - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    return day.strftime(RECORDED_AT_FORMAT) + ".mp4"


async def seed_customers(settings: Settings, now: datetime) -> str:
    """Each customer: one outdoor porch camera with one clip. Idempotent; returns the clip id."""
    clip_id = clip_id_for(now)
    porches = [DemoCamera(customer, CAMERA, Zone.OUTDOOR, "Porch") for customer in customer_ids()]
    await seed(settings, porches, [clip_id], now)
    return clip_id


async def run_browsing(
    settings: Settings, agent_token: str, analyst_token: str, now: datetime
) -> BrowsingResult:
    """Seed, grant, sweep through the app in-process, and read back flags and the agent."""
    clip_id = await seed_customers(settings, now)
    app = create_app(settings)
    analyst = {"Authorization": f"Bearer {analyst_token}"}
    async with (
        in_process(app) as served,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served), base_url="http://gateway"
        ) as client,
    ):
        await _fresh_start(client, analyst)
        tickets = [await _grant(client, settings, customer, now) for customer in customer_ids()]
        steps = [
            await _open_clip(client, agent_token, analyst, customer, ticket, clip_id)
            for customer, ticket in zip(customer_ids(), tickets, strict=True)
        ]
        flags = (await client.get("/v1/flags", params={"status": "open"}, headers=analyst)).json()
        principal = (await client.get(f"/v1/principals/{AGENT}", headers=analyst)).json()
    mine = [f for f in flags["flags"] if f["principal"] == AGENT]
    return BrowsingResult(steps, mine, principal)


async def _fresh_start(client: httpx.AsyncClient, analyst: dict[str, str]) -> None:
    """A rerun of the demo starts from an active agent with no open flags (both audited)."""
    await client.post(
        f"/v1/principals/{AGENT}/reinstate", headers=analyst, json={"reason": "demo rerun"}
    )
    found = await client.get(
        "/v1/flags", params={"status": "open", "principal": AGENT}, headers=analyst
    )
    for flag in found.json()["flags"]:
        await client.post(
            f"/v1/flags/{flag['flag_id']}/resolve",
            headers=analyst,
            json={"resolution": "demo rerun"},
        )


async def _grant(
    client: httpx.AsyncClient, settings: Settings, customer: str, now: datetime
) -> str:
    """The customer grants the support role their porch camera for one ticket, 4 hours."""
    ticket = f"CASE-{customer.removeprefix('cust-')}01"
    owner = dev_token(settings, f"owner@{customer}", [Role.CUSTOMER], customer)
    day = now - timedelta(days=1)
    body = {
        "grantee": "role:support_agent",
        "purpose": "customer_support",
        "cameras": [CAMERA],
        "footage_from": f"{day:%Y-%m-%d}T00:00:00Z",
        "footage_until": f"{day:%Y-%m-%d}T23:59:59Z",
        "expires_at": f"{now + timedelta(hours=4):%Y-%m-%dT%H:%M:%SZ}",
        "ticket": ticket,
        "include_private": False,
    }
    response = await client.post(
        "/v1/grants", json=body, headers={"Authorization": f"Bearer {owner}"}
    )
    response.raise_for_status()
    return ticket


async def _open_clip(
    client: httpx.AsyncClient,
    agent_token: str,
    analyst: dict[str, str],
    customer: str,
    ticket: str,
    clip_id: str,
) -> Step:
    headers = {
        "Authorization": f"Bearer {agent_token}",
        "X-Access-Purpose": "customer_support",
        "X-Access-Justification": f"{ticket} follow-up",
    }
    response = await client.get(f"/v1/footage/{customer}/{CAMERA}/{clip_id}", headers=headers)
    code = response.json()["error"]["code"] if response.status_code >= 400 else ""
    flags = await client.get(
        "/v1/flags", params={"status": "open", "principal": AGENT}, headers=analyst
    )
    return Step(customer, response.status_code, code, [f["rule"] for f in flags.json()["flags"]])


def report(result: BrowsingResult, base: str, agent_token: str) -> str:
    """What the sweep did, step by step, and the analyst's curl lines to see it."""
    lines = ["", f"# Browsing scenario: {AGENT} opens one clip from each of {CUSTOMERS} customers"]
    seen: set[str] = set()
    for number, step in enumerate(result.steps, 1):
        new = [rule for rule in step.flags if rule not in seen]
        seen.update(step.flags)
        note = f"  <- flag raised: {', '.join(new)}" if new else ""
        answer = f"{step.status} {step.code}".strip()
        lines.append(f"#   {number:2d}. {step.customer_id}: HTTP {answer}{note}")
    lines.append(
        f"#   {AGENT} is now {result.principal.get('status')}: {result.principal.get('reason', '')}"
    )
    browsing = next((f for f in result.flags if f["rule"] == "customer_browsing"), None)
    if browsing:
        lines.append(
            f"#   flag {browsing['flag_id']} lists {len(browsing['event_ids'])} evidence events"
        )
    return "\n".join(lines) + "\n" + _curl_lines(base, browsing, agent_token)


def _curl_lines(base: str, browsing: dict[str, Any] | None, agent_token: str) -> str:
    flag_id = browsing["flag_id"] if browsing else "FLAG_ID"
    ids = ",".join(browsing["event_ids"][:3]) if browsing else ""
    resolve = json.dumps({"resolution": "Reviewed with the agent's lead; access revoked."})
    agent = f"{base}/v1/principals/{AGENT}"
    return f"""
# As Ana (security analyst, $ANA above), on the running gateway:
# 1. The open flags (rule, severity, principal, the evidence event ids):
curl -sS -H "Authorization: Bearer $ANA" '{base}/v1/flags?status=open'; echo

# 2. The agent: status (suspended, by rule), open flags, last hour's activity:
curl -sS -H "Authorization: Bearer $ANA" {agent}; echo

# 3. The evidence: the agent's access decisions, then what detection did:
curl -sS -H "Authorization: Bearer $ANA" '{base}/v1/audit/events?principal={AGENT}&limit=20'; echo
curl -sS -H "Authorization: Bearer $ANA" \\
  '{base}/v1/audit/events?type=flag.raised&type=principal.suspended'; echo
#    (the first evidence events of flag {flag_id}: {ids} …)

# 4. The agent's next request is refused (403 principal_suspended):
export EVE={shlex.quote(agent_token)}
curl -sS -H "Authorization: Bearer $EVE" -H 'X-Access-Purpose: customer_support' \\
  -H 'X-Access-Justification: CASE-1101 follow-up' {base}/v1/footage/cust-11/{CAMERA}; echo

# 5. Resolve the flag, and (after review) reinstate the agent:
curl -sS -H "Authorization: Bearer $ANA" -H 'Content-Type: application/json' \\
  -d {shlex.quote(resolve)} {base}/v1/flags/{flag_id}/resolve; echo
curl -sS -X POST -H "Authorization: Bearer $ANA" {agent}/reinstate; echo
"""
