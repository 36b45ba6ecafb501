"""Rows that commit in the same transaction as an appended audit batch (the outbox's rows)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Companion:
    """A row that commits in the same transaction as an appended batch, or not at all.

    The outbox's notifications (gateway/notify/) ride with the event that causes them: no
    transaction and no fsync of their own on the request's path. A row whose unique key is
    taken already is skipped (ON CONFLICT DO NOTHING: "once per grant" without a read first).
    Table and column names are the gateway's own, never caller text.
    """

    table: str
    values: Mapping[str, Any]

    def sql(self, placeholder: str) -> str:
        """The INSERT with one `placeholder` per value, in the values' order."""
        names = ", ".join(self.values)
        marks = ", ".join([placeholder] * len(self.values))
        return f"INSERT INTO {self.table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608


# The companions of the batch being appended in this context (set by with_companions()).
_companions: ContextVar[Sequence[Companion]] = ContextVar("audit_companions", default=())


@contextmanager
def with_companions(rows: Sequence[Companion]) -> Iterator[None]:
    """Within this block, append_batch also inserts `rows` in the batch's transaction."""
    token = _companions.set(rows)
    try:
        yield
    finally:
        _companions.reset(token)


def companions() -> Sequence[Companion]:
    """The rows with_companions() set for this context (the PostgreSQL appender reads them)."""
    return _companions.get()
