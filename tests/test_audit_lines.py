"""gateway/audit/lines.py: with the production JSON logging, each audit_event line is built from
the stored canonical JSON and says exactly what structlog's own line would; any other logging
configuration gets structlog's line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Its own process: configure_logging() changes global state this suite relies on.
SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    from structlog.testing import capture_logs
    from gateway import migrations
    from gateway.audit import lines
    from gateway.audit.events import new_event
    from gateway.audit.store import AuditStore, before_commit
    from gateway.db import create_db_engine
    from gateway.logging_setup import configure_logging, json_chain_active, render_lines
    from gateway.types import EventType

    configure_logging("json")
    assert json_chain_active()
    events = [
        new_event(EventType.ACCESS_DECISION, request_id="r1", principal="sam",
                  justification="caf\\u00e9 \\u2028 \\"quoted\\"\\n", roles=["b", "a"],
                  detail={"zone": "indoor", "n": 1.5, "list": [1, None, True]}),
        new_event(EventType.FLAG_RAISED, detail={}),
    ]
    engine = create_db_engine(f"sqlite:///{tempfile.mkdtemp()}/a.db")
    migrations.migrate(engine)
    got = []
    with before_commit(lambda sealed, bodies: got.append((sealed, bodies))):
        AuditStore(engine).append_batch(events)
    [(sealed, bodies)] = got

    fast = lines.render(sealed, bodies)
    slow = render_lines("audit_event", sealed)
    assert fast != slow  # built, not rendered: compact
    assert len(fast) == len(slow) == 2
    for f, s, body in zip(fast, slow, bodies):
        assert f.startswith(body[:-1]) and "\\n" not in f
        f, s = json.loads(f), json.loads(s)
        assert f.pop("timestamp") and s.pop("timestamp")
        assert f == s, (f, s)
    again = lines.render(sealed)  # no bodies given: made again, the same bytes
    def head(out):
        return [l.rsplit(',"timestamp"', 1)[0] for l in out]
    assert head(again) == head(fast)

    odd = [dict(sealed[0], level="forged")]  # a key the line adds itself: the ordinary path
    def untimed(out):
        return [{k: v for k, v in json.loads(l).items() if k != "timestamp"} for l in out]
    assert untimed(lines.render(odd)) == untimed(render_lines("audit_event", odd))
    assert json.loads(lines.render(odd)[0])["level"] == "info"  # structlog's, as ever
    with capture_logs() as captured:
        assert not json_chain_active()
        assert lines.render(sealed) == render_lines("audit_event", sealed) == []
    assert json_chain_active()
    print("ok")
    """
)


def test_the_built_line_says_what_structlogs_own_line_says() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
