"""Recent activity of one principal, read back from the audit log (GET /v1/principals/{sub}).

The audit log, not the counters, is the source: it is the same on every replica, survives a
restart, and is what an analyst can check the numbers against.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from gateway.audit.events import Event
from gateway.audit.store import MAX_PAGE, AuditStore, EventQuery
from gateway.detection.rules import Access, access_of
from gateway.types import EventType, Verdict, format_ts

MAX_PAGES = 20  # 20 000 decisions in an hour is far past every threshold already


def staff_accesses(
    store: AuditStore, principal: str, since: datetime, until: datetime | None = None
) -> Iterator[tuple[Event, Access]]:
    """The principal's access decisions since a moment, oldest first, with their facts."""
    for event in decisions(store, principal, since, until):
        access = access_of(event)
        if access is not None:
            yield event, access


def decisions(
    store: AuditStore, principal: str, since: datetime, until: datetime | None = None
) -> Iterator[Event]:
    """Every access.decision of the principal since a moment, oldest first."""
    after: int | None = None
    for _ in range(MAX_PAGES):
        page = store.query(
            EventQuery(
                principal=principal,
                types=(str(EventType.ACCESS_DECISION),),
                since=format_ts(since),
                until=format_ts(until) if until else None,
                after_seq=after,
                limit=MAX_PAGE,
            )
        )
        yield from page
        if len(page) < MAX_PAGE:
            return
        after = int(page[-1]["seq"])


def recent_activity(store: AuditStore, principal: str, now: datetime) -> dict[str, Any]:
    """Views, distinct customers, distinct clips and denials in the last hour."""
    since = now - timedelta(hours=1)
    views = denials = 0
    customers: set[str] = set()
    clips: set[str] = set()
    for event in decisions(store, principal, since):
        # Every denial the principal's timeline lists counts, whatever its status or reason
        # (a suspended principal's refusals too); detection's own rule is narrower (§8).
        if event.get("decision") == Verdict.DENY:
            denials += 1
        access = access_of(event)
        if access is None:
            continue
        if access.is_view:
            views += 1
            clips.add(access.clip_key or "")
        if access.shows_customer and access.customer_id:
            customers.add(access.customer_id)
    return {
        "since": format_ts(since),
        "views_last_hour": views,
        "distinct_clips_last_hour": len(clips),
        "distinct_customers_last_hour": len(customers),
        "denials_last_hour": denials,
    }
