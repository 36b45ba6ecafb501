"""Which footage views notify the customer (contract §14), as rows that commit with the view.

An allowed staff view writes its access.decision event through the group commit; the rows here
ride in the same batch (audit/companions.py): the notification exists iff the decision does,
and costs the view no transaction of its own. Each kind is once per its dedupe key, enforced
by the database's unique index (ON CONFLICT DO NOTHING, race-free across replicas):

- `grant.first_use`: once per grant, at the first view it allows;
- `access.emergency` / `access.legal_request`: once per principal, clip and purpose (a player
  fetches one clip in many range requests; the customer hears of the clip once).

A small in-process memory of keys already committed skips the insert on later views: it only
saves work, the unique index is what makes the rule hold.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from gateway.audit.companions import Companion
from gateway.audit.events import Event
from gateway.notify.outbox import Destination, Kind, companion
from gateway.types import STAFF_ROLES, Purpose, Verdict

REMEMBERED = 10_000
WATCHED_PURPOSES = {
    str(Purpose.EMERGENCY): Kind.ACCESS_EMERGENCY,
    str(Purpose.LEGAL_REQUEST): Kind.ACCESS_LEGAL_REQUEST,
}
VIEW_FIELDS = ("event_id", "ts", "principal", "purpose", "justification", "camera_id", "clip_id")


class ViewNotices:
    """The notification rows one access.decision carries; remember() them once committed."""

    def __init__(self) -> None:
        self._committed: OrderedDict[str, None] = OrderedDict()

    def rows(self, event: Event) -> Sequence[Companion]:
        """The rows for this decision (none for a denial, a customer, or a key seen before)."""
        if event.get("decision") != Verdict.ALLOW or not event.get("customer_id"):
            return ()
        if STAFF_ROLES.isdisjoint(event.get("roles") or ()):
            return ()  # the owner looking at their own footage is not news to them
        wanted = [(key, kind) for key, kind in _keys(event) if key not in self._committed]
        if not wanted:
            return ()  # the common case: built nothing
        payload: dict[str, Any] = {k: event.get(k) for k in VIEW_FIELDS}
        payload["grant_id"] = event.get("grant_id")
        customer = str(event["customer_id"])
        return [_row(customer, kind, payload, key) for key, kind in wanted]

    def remember(self, rows: Sequence[Companion]) -> None:
        """These rows' keys are committed (or were already): skip them from now on."""
        for row in rows:
            key = row.values.get("dedupe_key")
            if key:
                self._committed[key] = None
                self._committed.move_to_end(key)
        while len(self._committed) > REMEMBERED:
            self._committed.popitem(last=False)


def _keys(event: Event) -> list[tuple[str, Kind]]:
    """The dedupe keys (and kinds) an allowed staff view may notify under."""
    found: list[tuple[str, Kind]] = []
    if event.get("grant_id"):
        found.append((f"{Kind.GRANT_FIRST_USE}:{event['grant_id']}", Kind.GRANT_FIRST_USE))
    kind = WATCHED_PURPOSES.get(str(event.get("purpose")))
    if kind is not None and event.get("principal"):
        who = "\x1f".join(
            str(event.get(k)) for k in ("principal", "customer_id", "camera_id", "clip_id")
        )
        found.append((f"{kind}:{hashlib.sha256(who.encode()).hexdigest()[:64]}", kind))
    return found


def _row(customer_id: str, kind: Kind, payload: dict[str, Any], key: str) -> Companion:
    return companion(Destination.CUSTOMER, customer_id, kind, payload, dedupe_key=key)
