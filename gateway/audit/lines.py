"""Each committed audit event's structured log line (`audit_event`), rendered for a batch.

With the production JSON logging (logging_setup.json_chain_active()), the line is built from the
canonical JSON the store already made for the event's hash: the same keys and values as
structlog's JSONRenderer would write for `log.info("audit_event", **event)` (the event, its
hash, `event`, `level` and `timestamp`), with compact separators and the event's keys sorted.
Running the processor chain for each event cost the writer more than sealing it, in a thread
that shares the GIL with the event loop (docs/benchmarks.md). Any other configuration (the
console renderer, `capture_logs()` in tests) takes the ordinary path, record by record.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.events import Event, body_of, canonical_json
from gateway.logging_setup import json_chain_active, render_lines
from gateway.types import now_ts

AUDIT_EVENT = "audit_event"  # the structured log's event name for each committed audit event
# Keys the line adds to the event; an event carrying one of them takes the ordinary path.
_ADDED = frozenset(("event", "level", "timestamp"))


def render(sealed: Sequence[Event], bodies: Sequence[str] | None = None) -> list[str] | None:
    """The batch's log lines, not yet written; None: log each event the ordinary way.

    bodies: each event's canonical JSON without its hash, when the caller has it (else made).
    """
    if not json_chain_active():
        return render_lines(AUDIT_EVENT, sealed)
    tail = f'"event":"{AUDIT_EVENT}","level":"info","timestamp":"{now_ts()}"}}'
    lines = []
    for i, event in enumerate(sealed):
        body = bodies[i] if bodies is not None else canonical_json(body_of(event))
        if not _ADDED.isdisjoint(event) or not body.endswith("}"):
            return render_lines(AUDIT_EVENT, sealed)
        sep = "," if len(body) > 2 else ""  # "{}": an event with no keys
        lines.append(f'{body[:-1]}{sep}"hash":"{event["hash"]}",{tail}')
    return lines
