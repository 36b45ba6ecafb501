"""A legal request approved over HTTP, as contract §13 requires before any legal view: the
legal staff member asks, a legal approver (another person) approves, for each customer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

APPROVER = "legal-approver@legal"


def approve_legal(
    http: httpx.Client,
    url: str,
    headers_of: Callable[..., dict[str, str]],
    sub: str,
    customers: Iterable[str],
    ticket: str,
) -> None:
    """Ask for and approve legal_request access to every camera of each customer."""
    asker = headers_of(sub, "legal")
    approver = headers_of(APPROVER, "legal_approver")
    for customer in customers:
        body: dict[str, Any] = {
            "customer_id": customer,
            "cameras": ["*"],
            "footage_from": "2000-01-01T00:00:00Z",
            "footage_until": "2100-01-01T00:00:00Z",
            "purpose": "legal_request",
            "ticket": ticket,
            "reason": "A court order.",
            "include_private": True,
        }
        asked = http.post(f"{url}/v1/access-requests", json=body, headers=asker)
        assert asked.status_code == 201, asked.text
        request_id = asked.json()["request_id"]
        approved = http.post(f"{url}/v1/access-requests/{request_id}/approve", headers=approver)
        assert approved.status_code == 200 and approved.json()["state"] == "approved", approved.text
