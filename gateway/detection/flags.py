"""Flags in the `flags` table: raise (or extend the one already open), list, resolve.

One flag per principal, rule and window: while a flag is younger than its rule's window,
further evidence is added to it instead of raising another; the unique constraint on
(principal, rule, window_key) settles the race when two replicas raise at the same moment.
Sync code: call it from a worker thread. Every transaction reads before it writes, so each
takes the write lock from its start (`begin_write`: BEGIN IMMEDIATE on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from gateway.db import begin_write, flags, writing
from gateway.errors import BadRequest, Forbidden, NotFound
from gateway.ids import random_hex
from gateway.types import FlagStatus, Severity, format_ts

MAX_EVIDENCE = 200  # event ids kept on one flag; `detail.events` keeps counting past it
MAX_KEY_TRIES = 50  # resolved flags in one window before we give up (an error is logged)


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag as stored."""

    flag_id: str
    rule: str
    severity: Severity
    principal: str
    created_at: str
    window_key: str
    event_ids: list[str]
    detail: dict[str, Any]
    status: FlagStatus
    resolution: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The contract's flag fields (§5), and the rest of what an analyst needs."""
        return {
            "flag_id": self.flag_id,
            "rule": self.rule,
            "severity": self.severity,
            "principal": self.principal,
            "created_at": self.created_at,
            "event_ids": self.event_ids,
            "status": self.status,
            "window_key": self.window_key,
            "detail": self.detail,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
        }


@dataclass(frozen=True, slots=True)
class NewFlag:
    """What a rule found, before it is stored."""

    rule: str
    severity: Severity
    principal: str
    window_key: str
    window: timedelta
    event_id: str
    detail: dict[str, Any]


class FlagStore:
    """The flags table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def raise_or_extend(
        self, new: NewFlag, now: datetime, evidence: Callable[[], Sequence[str]]
    ) -> tuple[Flag, bool]:
        """The open flag for this finding, extended with its event, or a new one (True)."""
        since = format_ts(now - new.window)
        with begin_write(self.engine) as conn:
            current = _recent_open(conn, new.principal, new.rule, since)
            if current is not None:
                return _extend(conn, current, new), False
        ids = list(dict.fromkeys([*evidence(), new.event_id]))[-MAX_EVIDENCE:]
        return self._claim_window(new, now, ids)

    def extend_many(self, flag_id: str, news: Sequence[NewFlag]) -> Flag | None:
        """Add a batch of evidence to the flag in one write; None when it is no longer open."""
        return self.extend_batch([(flag_id, news)])[0]

    def extend_batch(self, batches: Sequence[tuple[str, Sequence[NewFlag]]]) -> list[Flag | None]:
        """extend_many for several flags in one transaction (one commit, so one fsync, for
        every flag a process holds evidence for); None for each flag no longer open."""
        with begin_write(self.engine) as conn:
            done: list[Flag | None] = []
            for flag_id, news in batches:
                current = _select_one(conn, flags.c.flag_id == flag_id)
                if current is None or current.status != FlagStatus.OPEN:
                    done.append(None)
                else:
                    done.append(_extend(conn, current, *news))
            return done

    def _claim_window(self, new: NewFlag, now: datetime, ids: list[str]) -> tuple[Flag, bool]:
        """Insert under the window's key; on a clash, extend the holder if it is open.

        A resolved holder keeps its key, so the next flag in that window is keyed after it
        (`window~flag_id`): every replica derives the same next key, and the unique
        constraint still lets only one of them raise.
        """
        key = new.window_key
        for _ in range(MAX_KEY_TRIES):
            with begin_write(self.engine) as conn:
                holder = _select_one(
                    conn,
                    flags.c.principal == new.principal,
                    flags.c.rule == new.rule,
                    flags.c.window_key == key,
                )
                if holder is not None and holder.status == FlagStatus.OPEN:
                    return _extend(conn, holder, new), False
            if holder is None:
                try:
                    return self._insert(new, now, ids, key), True
                except IntegrityError:
                    continue  # another replica raised it first: read it again
            key = f"{new.window_key}~{holder.flag_id}"
        raise RuntimeError(f"no free flag key for {new.principal} {new.rule} {new.window_key}")

    def _insert(self, new: NewFlag, now: datetime, ids: list[str], key: str) -> Flag:
        flag = Flag(
            flag_id="flg_" + random_hex(),
            rule=new.rule,
            severity=new.severity,
            principal=new.principal,
            created_at=format_ts(now),
            window_key=key,
            event_ids=ids,
            detail={**new.detail, "events": len(ids)},
            status=FlagStatus.OPEN,
        )
        with begin_write(self.engine) as conn:
            conn.execute(flags.insert().values(**_row(flag)))
        return flag

    def get(self, flag_id: str) -> Flag:
        with self.engine.connect() as conn:
            found = _select_one(conn, flags.c.flag_id == flag_id)
        if found is None:
            raise NotFound("No such flag.")
        return found

    def search(
        self, status: FlagStatus | None = None, principal: str | None = None, limit: int = 100
    ) -> list[Flag]:
        """Flags, newest first, filtered by status and principal when given."""
        conds = []
        if status is not None:
            conds.append(flags.c.status == status)
        if principal is not None:
            conds.append(flags.c.principal == principal)
        stmt = flags.select().where(*conds).order_by(flags.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_flag(row) for row in conn.execute(stmt).mappings()]

    def resolve(
        self, flag_id: str, resolution: str, by: str, now: datetime, conn: Connection | None = None
    ) -> Flag:
        """Close an open flag with the analyst's resolution; BadRequest if it is closed,
        Forbidden `self_review` if it is a flag on `by` (docs/security.md: review is by another).

        In `conn`'s transaction when given (a change and its audit event commit together).
        """
        with writing(self.engine, conn) as c:
            # Who the flag is on is part of the one UPDATE: checked and acted on in one step.
            result = c.execute(
                flags.update()
                .where(
                    flags.c.flag_id == flag_id,
                    flags.c.status == FlagStatus.OPEN,
                    flags.c.principal != by,
                )
                .values(
                    status=FlagStatus.RESOLVED,
                    resolution=resolution,
                    resolved_by=by,
                    resolved_at=format_ts(now),
                )
            )
            found = _select_one(c, flags.c.flag_id == flag_id)
            if found is None:
                raise NotFound("No such flag.")
            if result.rowcount == 0:
                if found.principal == by:
                    message = "A flag on you is resolved by someone else."
                    raise Forbidden(message, code="self_review")
                raise BadRequest("This flag is already resolved.")
            return found


def _recent_open(conn: Connection, principal: str, rule: str, since: str) -> Flag | None:
    stmt = (
        flags.select()
        .where(
            flags.c.principal == principal,
            flags.c.rule == rule,
            flags.c.status == FlagStatus.OPEN,
            flags.c.created_at >= since,
        )
        .order_by(flags.c.created_at.desc())
        .limit(1)
    )
    row = conn.execute(stmt).mappings().first()
    return _flag(row) if row else None


def _extend(conn: Connection, flag: Flag, *news: NewFlag) -> Flag:
    """Add events to an open flag in one UPDATE (the evidence list is capped, the count is not)."""
    ids, detail = list(flag.event_ids), dict(flag.detail)
    seen = set(ids)
    for new in news:
        if new.event_id in seen:
            continue
        seen.add(new.event_id)
        ids.append(new.event_id)
        events = int(detail.get("events", 0)) + 1
        count = detail.get("count")
        detail.update(new.detail)
        detail["events"] = events
        # The count only grows: keep the highest seen, whichever replica saw it.
        if count is not None and "count" in new.detail:
            detail["count"] = max(int(count), int(new.detail["count"]))
    if ids == flag.event_ids:
        return flag
    ids = ids[-MAX_EVIDENCE:]
    conn.execute(
        flags.update()
        .where(flags.c.flag_id == flag.flag_id)
        .values(event_ids=json.dumps(ids), detail=json.dumps(detail, sort_keys=True))
    )
    return Flag(**{**_as_dict(flag), "event_ids": ids, "detail": detail})


def _select_one(conn: Connection, *conds: sa.ColumnElement[bool]) -> Flag | None:
    row = conn.execute(flags.select().where(*conds)).mappings().first()
    return _flag(row) if row else None


def _as_dict(flag: Flag) -> dict[str, Any]:
    return {name: getattr(flag, name) for name in Flag.__dataclass_fields__}


def _row(flag: Flag) -> dict[str, Any]:
    row = _as_dict(flag)
    row["event_ids"] = json.dumps(flag.event_ids)
    row["detail"] = json.dumps(flag.detail, sort_keys=True)
    return row


def _flag(row: Any) -> Flag:
    values = dict(row)
    values["event_ids"] = json.loads(values["event_ids"])
    values["detail"] = json.loads(values["detail"] or "{}")
    values["severity"] = Severity(values["severity"])
    values["status"] = FlagStatus(values["status"])
    return Flag(**values)
