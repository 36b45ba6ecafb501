"""Access requests notify their customer: created, approved, denied, expired or cancelled.

Registered with `AccessRequests.on_transition`, which runs it inside every state change's
transaction on its connection (the change and its audit events commit there): the notification
row exists iff the state change and its event committed (contract §14). Typed by protocol, so
this module needs nothing from gateway/access_requests/ (that package is wired to it in
services.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from gateway.notify.outbox import notify

# The transitions the customer hears of; a staff approval short of the threshold is not one.
NOTIFIED = frozenset(
    {
        "access_request.created",
        "access_request.approved",
        "access_request.denied",
        "access_request.expired",
        "access_request.cancelled",
    }
)


class _Request(Protocol):
    @property
    def customer_id(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    def as_json(self, now: datetime) -> dict[str, Any]: ...


class _Transition(Protocol):
    @property
    def request(self) -> _Request: ...
    @property
    def event_type(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def at(self) -> datetime: ...


def notify_transition(conn: Connection, transition: _Transition) -> None:
    """The hook: one notification per customer-facing transition, in its transaction."""
    kind = str(transition.event_type)
    if kind not in NOTIFIED:
        return
    request = transition.request
    payload = {**request.as_json(transition.at), "by": transition.actor}
    notify(conn, request.customer_id, kind, payload)
