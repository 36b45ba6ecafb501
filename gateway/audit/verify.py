"""Walk the chain and say whether it is intact, and if not, the first seq that is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.audit.chain import GENESIS_HASH
from gateway.audit.events import chain_hash

# Columns kept beside the body for indexed queries; they must agree with the body they copy.
INDEXED = (
    "event_id",
    "ts",
    "type",
    "request_id",
    "principal",
    "customer_id",
    "decision",
    "grant_id",
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the chain had this head at this seq (verified by its owner)."""

    seq: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_rows(
    rows: Iterable[dict[str, Any]], checkpoint: Checkpoint | None = None
) -> VerifyResult:
    """Check seq density, prev_hash links, each hash, and the indexed copies of the body."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    checkpoint_seen = False
    for row in rows:
        problem = _row_problem(row, expected_seq, prev_hash)
        if problem:
            return VerifyResult(False, count, prev_hash, expected_seq, problem)
        if checkpoint and row["seq"] == checkpoint.seq:
            if row["hash"] != checkpoint.head_hash:
                # A checkpoint that failed its own signature check says why (checkpoints.py).
                why = getattr(checkpoint, "problem", "") or "hash differs from signed checkpoint"
                return VerifyResult(False, count, prev_hash, expected_seq, why)
            checkpoint_seen = True
        count, expected_seq, prev_hash = count + 1, expected_seq + 1, row["hash"]
    if checkpoint and not checkpoint_seen and checkpoint.seq > 0:
        # The log ends before a seq that a signed checkpoint says existed: the tail was cut.
        problem = f"log ends before checkpoint seq {checkpoint.seq}"
        return VerifyResult(False, count, prev_hash, expected_seq, problem)
    return VerifyResult(True, count, prev_hash)


def _row_problem(row: dict[str, Any], expected_seq: int, prev_hash: str) -> str:
    if row["seq"] != expected_seq:
        return f"expected seq {expected_seq}, found {row['seq']}"
    try:
        body = json.loads(row["body"])
    except (TypeError, ValueError):
        return "body is not JSON"
    if not isinstance(body, dict) or body.get("seq") != expected_seq:
        return "body seq differs from row seq"
    if body.get("prev_hash") != prev_hash or row["prev_hash"] != prev_hash:
        return "prev_hash does not link to the previous event"
    if chain_hash(prev_hash, body) != row["hash"]:
        return "hash does not match the event"
    for column in INDEXED:
        if row.get(column) != body.get(column):
            return f"column {column} differs from the hashed event"
    return ""
