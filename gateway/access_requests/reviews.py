"""Break-glass reviews: every use opens one, a security analyst closes it, overdue ones flag.

Break-glass (`emergency`) stays immediate (contract §6), but each allowed use is reviewed after
the fact (contract §13): the first use by a principal on a customer opens a review
(`review.opened`), and further uses while it is open join it (its `uses` and `event_ids`), so
one emergency is one review however many ranged requests a player makes. A security analyst
closes it with a note (`review.closed`) within `review_within_hours` of approvals.toml; the
periodic check raises a high `review_overdue` flag on the principal once it is late, once,
whichever replica gets there first (a conditional UPDATE claims it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from gateway.audit.events import Event, new_event
from gateway.audit.log import AuditLog
from gateway.db import reading, reviews, writing
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.ids import random_hex
from gateway.types import EventType, ReviewState, Verdict, format_ts, parse_ts

log = structlog.get_logger("gateway.reviews")

MAX_EVIDENCE = 200
MAX_NOTE = 2000
CLAIMED = "claimed"  # overdue_flag_id while the claiming replica raises the flag
ACTOR = "gateway:reviews"
BREAK_GLASS = "break_glass"  # the decision reason of an allowed emergency access (authz.py)
# Raise a flag: (rule, subject, evidence event id, detail) → the flag id, or None.
RaiseFlag = Callable[[str, str, str, dict[str, Any]], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Review:
    review_id: str
    subject: str
    customer_id: str
    state: ReviewState
    opened_at: datetime
    due_at: datetime
    event_ids: list[str]
    uses: int
    closed_at: datetime | None = None
    closed_by: str | None = None
    note: str | None = None
    overdue_flag_id: str | None = None

    def as_json(self, now: datetime) -> dict[str, Any]:
        flag = self.overdue_flag_id if self.overdue_flag_id != CLAIMED else None
        return {
            "review_id": self.review_id,
            "subject": self.subject,
            "customer_id": self.customer_id,
            "state": self.state,
            "opened_at": format_ts(self.opened_at),
            "due_at": format_ts(self.due_at),
            "overdue": self.state is ReviewState.OPEN and now >= self.due_at,
            "uses": self.uses,
            "event_ids": self.event_ids,
            "closed_at": format_ts(self.closed_at) if self.closed_at else None,
            "closed_by": self.closed_by,
            "note": self.note,
            "overdue_flag_id": flag,
        }


class ReviewStore:
    """The reviews table; sync, run in worker threads (changes inside atomic.py's transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open_or_join(
        self,
        conn: Connection,
        subject: str,
        customer_id: str,
        event_id: str,
        now: datetime,
        due: datetime,
    ) -> tuple[Review, bool]:
        """The open review of this principal on this customer, joined; or a new one (True)."""
        current = _one(
            conn,
            reviews.c.subject == subject,
            reviews.c.customer_id == customer_id,
            reviews.c.state == ReviewState.OPEN,
        )
        if current is not None:
            ids = [*current.event_ids, event_id][-MAX_EVIDENCE:]
            conn.execute(
                reviews.update()
                .where(reviews.c.review_id == current.review_id)
                .values(event_ids=json.dumps(ids), uses=current.uses + 1)
            )
            return self.get(current.review_id, conn), False
        review = Review(
            review_id="rv_" + random_hex(),
            subject=subject,
            customer_id=customer_id,
            state=ReviewState.OPEN,
            opened_at=now,
            due_at=due,
            event_ids=[event_id],
            uses=1,
        )
        conn.execute(reviews.insert().values(**_row(review)))
        return review, True

    def get(self, review_id: str, conn: Connection | None = None) -> Review:
        with reading(self.engine, conn) as c:
            found = _one(c, reviews.c.review_id == review_id)
        if found is None:
            raise NotFound("No such review.")
        return found

    def search(self, state: ReviewState | None, limit: int) -> list[Review]:
        conds = [reviews.c.state == state] if state is not None else []
        stmt = reviews.select().where(*conds).order_by(reviews.c.opened_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_review(r) for r in conn.execute(stmt).mappings()]

    def close(self, conn: Connection, review_id: str, by: str, note: str, now: datetime) -> Review:
        """Close an open review; BadRequest if closed, Forbidden `self_review` for one's own."""
        result = conn.execute(
            reviews.update()
            .where(
                reviews.c.review_id == review_id,
                reviews.c.state == ReviewState.OPEN,
                reviews.c.subject != by,
            )
            .values(state=ReviewState.CLOSED, closed_at=format_ts(now), closed_by=by, note=note)
        )
        found = self.get(review_id, conn)
        if result.rowcount == 0:
            if found.subject == by:
                raise Forbidden("A review of you is closed by someone else.", code="self_review")
            raise BadRequest("This review is already closed.")
        return found

    def overdue(self, now: datetime) -> list[Review]:
        """Open reviews past their due time that no replica has flagged yet."""
        stmt = reviews.select().where(
            reviews.c.state == ReviewState.OPEN,
            reviews.c.due_at <= format_ts(now),
            reviews.c.overdue_flag_id.is_(None),
        )
        with self.engine.connect() as conn:
            return [_review(r) for r in conn.execute(stmt).mappings()]

    def mark_flag(self, review_id: str, flag_id: str, expect: str | None) -> bool:
        """Set overdue_flag_id where it is still `expect`: the claim, then the flag's id."""
        cond = (
            reviews.c.overdue_flag_id.is_(None)
            if expect is None
            else reviews.c.overdue_flag_id == expect
        )
        with writing(self.engine) as conn:
            result = conn.execute(
                reviews.update()
                .where(reviews.c.review_id == review_id, cond)
                .values(overdue_flag_id=flag_id)
            )
        return result.rowcount == 1


class Reviews:
    """Opens reviews from committed break-glass decisions; closes them; flags overdue ones."""

    def __init__(
        self,
        store: ReviewStore,
        audit: AuditLog,
        review_within: Callable[[], float],
        raise_flag: RaiseFlag,
    ) -> None:
        self.store = store
        self.audit = audit
        self.review_within = review_within  # hours, read from approvals.toml as it stands
        self.raise_flag = raise_flag
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def __call__(self, event: Event) -> None:
        """Observe a committed access.decision: an allowed break-glass use opens a review."""
        if (
            event.get("type") != EventType.ACCESS_DECISION
            or event.get("decision") != Verdict.ALLOW
            or event.get("reason") != BREAK_GLASS
            or not event.get("principal")
            or not event.get("customer_id")
        ):
            return
        now = parse_ts(str(event["ts"]))
        due = now + timedelta(hours=self.review_within())
        subject, customer_id, event_id = event["principal"], event["customer_id"], event["event_id"]

        def change(conn: Connection) -> tuple[Review, bool]:
            return self.store.open_or_join(conn, subject, customer_id, event_id, now, due)

        def events_of(result: tuple[Review, bool]) -> list[Event]:
            review, opened = result
            if not opened:
                return []
            return [
                new_event(
                    EventType.REVIEW_OPENED,
                    request_id=event.get("request_id"),
                    principal=ACTOR,
                    action="review.open",
                    customer_id=customer_id,
                    purpose=event.get("purpose"),
                    detail={**review.as_json(now), "cause_event_id": event_id},
                )
            ]

        await self.audit.commit_with_all(change, events_of)

    async def close(
        self, review_id: str, by: str, note: str, make_event: Callable[..., Event]
    ) -> tuple[Review, Event]:
        """Close with the analyst's note, with its review.closed event."""
        now = self.clock()

        def change(conn: Connection) -> Review:
            return self.store.close(conn, review_id, by, note, now)

        def events_of(review: Review) -> list[Event]:
            return [
                make_event(
                    EventType.REVIEW_CLOSED,
                    action="review.close",
                    customer_id=review.customer_id,
                    detail={"review_id": review_id, "subject": review.subject, "note": note},
                )
            ]

        review, sealed = await self.audit.commit_with_all(change, events_of)
        return review, sealed[0]

    async def flag_overdue(self) -> int:
        """Raise a high `review_overdue` flag for each open review past due (once each)."""
        now = self.clock()
        flagged = 0
        for review in await anyio.to_thread.run_sync(self.store.overdue, now):
            if not await anyio.to_thread.run_sync(
                self.store.mark_flag, review.review_id, CLAIMED, None
            ):
                continue  # another replica claimed it
            detail = {
                "review_id": review.review_id,
                "customer_id": review.customer_id,
                "due_at": format_ts(review.due_at),
            }
            flag_id = await self.raise_flag(
                "review_overdue", review.subject, review.event_ids[0], detail
            )
            if flag_id is None:
                log.error("review_overdue_not_flagged", review_id=review.review_id)
                continue
            await anyio.to_thread.run_sync(self.store.mark_flag, review.review_id, flag_id, CLAIMED)
            flagged += 1
        return flagged


def parse_note(body: Any) -> str:
    """A close's body: `{"note": "…"}`, 1 to 2000 characters."""
    if not isinstance(body, dict) or set(body) - {"note"}:
        raise BadRequest('The body must be {"note": "…"}.')
    note = body.get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise BadRequest(f"note must be 1 to {MAX_NOTE} characters of text.")
    return note


def _one(conn: Connection, *conds: sa.ColumnElement[bool]) -> Review | None:
    row = conn.execute(reviews.select().where(*conds).limit(1)).mappings().first()
    return _review(row) if row else None


def _row(review: Review) -> dict[str, Any]:
    return {
        "review_id": review.review_id,
        "subject": review.subject,
        "customer_id": review.customer_id,
        "state": review.state,
        "opened_at": format_ts(review.opened_at),
        "due_at": format_ts(review.due_at),
        "event_ids": json.dumps(review.event_ids),
        "uses": review.uses,
    }


def _review(row: Any) -> Review:
    return Review(
        review_id=row["review_id"],
        subject=row["subject"],
        customer_id=row["customer_id"],
        state=ReviewState(row["state"]),
        opened_at=parse_ts(row["opened_at"]),
        due_at=parse_ts(row["due_at"]),
        event_ids=json.loads(row["event_ids"]),
        uses=int(row["uses"]),
        closed_at=parse_ts(row["closed_at"]) if row["closed_at"] else None,
        closed_by=row["closed_by"],
        note=row["note"],
        overdue_flag_id=row["overdue_flag_id"],
    )
