"""Log injection against a real `footage-gateway serve` process with FOOTGW_LOG_FORMAT=json.

Newlines, control characters, obs-folds and look-alike line breaks in justifications, reasons and
user agents must stay inside one escaped JSON record; every line the process writes to stderr is
one JSON object (uvicorn's own warnings included); and no bearer token, nor any segment of one,
ever appears in any log line, whether it verified or not.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.types import Zone
from tests.support.faults import GatewayProcess, all_events, trace, wait_until
from tests.support.server import GatewayEnv, make_env
from tests.support.tokens import hand_built, make_keypair, sign

CLIP = "20261127T101500Z.mp4"
SECRET = b"BEDROOM-" * 4096
TICKET = "CASE-7"
FORGED = '{"event":"audit_event","principal":"forged","decision":"allow"}'

# Header values as raw bytes: what a hostile client can put on the wire.
HOSTILE_JUSTIFICATIONS: dict[str, bytes] = {
    "ANSI escapes and bells": b"CASE-7 \x1b[2J\x1b[31mwiped\x1b[0m \x07\x08\x7f",
    "a tab and a vertical tab": b"CASE-7 a\tb\x0bc\x0cd",
    "latin-1 NEL (U+0085)": b"CASE-7 before\x85" + FORGED.encode(),
    "UTF-8 line separator (U+2028)": b"CASE-7 before\xe2\x80\xa8" + FORGED.encode(),
    "UTF-8 paragraph separator and NEL": b"CASE-7 \xe2\x80\xa9\xc2\x85 end",
    "a bare CR": b"CASE-7 before\r" + FORGED.encode(),
    "a bare LF": b"CASE-7 before\n" + FORGED.encode(),
    "an obs-fold": b"CASE-7 before\r\n " + FORGED.encode(),
    "a NUL": b"CASE-7 before\x00after",
    "a JSON quote and brace break-out": b'CASE-7 "}\n' + FORGED.encode(),
}


HOSTILE_USER_AGENTS: dict[str, bytes] = {
    "user agent with escapes": b"agent\x1b[1m/1.0",
    "user agent with obs-text line breaks": b"agent/1.0 \xe2\x80\xa8\xc2\x85" + FORGED.encode(),
    "user agent with a bare LF": b"agent/1.0\n" + FORGED.encode(),
}


def raw_request(url: str, lines: list[bytes]) -> tuple[int | None, dict[str, str]]:
    """Send a hand-written request; the status (None if the server hung up) and headers."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"\r\n".join([*lines, b"Connection: close", b"", b""]))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return None, {}
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayEnv, GatewayProcess]]:
    root = tmp_path_factory.mktemp("logs")
    env = make_env(root)
    env.set_zone("c1", "front", Zone.OUTDOOR)
    env.put_clip("c1", "front", CLIP, SECRET)
    with GatewayProcess(env.env, root / "stderr.log") as gateway:
        yield env, gateway


@pytest.fixture(scope="module")
def exercised(logged: tuple[GatewayEnv, GatewayProcess]) -> dict[str, Any]:
    """Drive every hostile input through the process once; what was sent and answered."""
    env, gateway = logged
    tokens: list[str] = []
    answered: dict[str, tuple[int | None, dict[str, str]]] = {}

    def token(sub: str, *roles: str, **kw: Any) -> str:
        value = env.token(sub, *roles, **kw)
        tokens.append(value)
        return value

    owner = token("alice", "customer", customer_id="c1")
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        grant = {
            "grantee": "sam",
            "purpose": "customer_support",
            "cameras": ["front"],
            "footage_from": "2026-11-27T00:00:00Z",
            "footage_until": "2026-11-27T23:59:59Z",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticket": TICKET,
        }
        created = c.post("/v1/grants", json=grant, headers={"Authorization": f"Bearer {owner}"})
        assert created.status_code == 201
        agent = token("sam", "support_agent")

        def staff_view(justification: bytes, user_agent: bytes) -> Any:
            return raw_request(
                gateway.url,
                [
                    f"GET /v1/footage/c1/front/{CLIP} HTTP/1.1".encode(),
                    b"Host: gateway",
                    f"Authorization: Bearer {agent}".encode(),
                    b"X-Access-Purpose: customer_support",
                    b"X-Access-Justification: " + justification,
                    b"User-Agent: " + user_agent,
                ],
            )

        for name, justification in HOSTILE_JUSTIFICATIONS.items():
            answered[name] = staff_view(justification, b"agent/1.0")
        for name, user_agent in HOSTILE_USER_AGENTS.items():
            answered[name] = staff_view(b"CASE-7 plain", user_agent)
        analyst = token("ana", "security_analyst")
        suspended = c.post(
            "/v1/principals/sam2/suspend",
            json={"reason": "line one\n" + FORGED + "\r\nline three\u2028\u0085\x1b[31m"},
            headers={"Authorization": f"Bearer {analyst}"},
        )
        assert suspended.status_code == 200
        answered["suspension"] = (suspended.status_code, dict(suspended.headers))
        for body in ({"zone": "indoor", "label": "Nursery\n" + FORGED}, {"zone": "x\ny"}):
            bad = c.put(
                "/v1/cameras/c1/front", json=body, headers={"Authorization": f"Bearer {owner}"}
            )
            assert bad.status_code == 400
        # Tokens that fail, in the Authorization header and elsewhere.
        key = make_keypair("ed25519", "other")
        forged = [
            sign({"sub": "mallory", "roles": ["admin"], "exp": 4102444800}, key),
            hand_built({"alg": "none"}, {"sub": "mallory", "roles": ["admin"]}),
            token("expired", "customer", customer_id="c1", ttl=-3600),
        ]
        tokens.extend(forged)
        for bad_token in forged:
            r = c.get(
                f"/v1/footage/c1/front/{CLIP}", headers={"Authorization": f"Bearer {bad_token}"}
            )
            assert r.status_code == 401
            c.get("/v1/audit/events", headers={"Authorization": f"Bearer {bad_token}"})
            c.get(f"/v1/footage/c1/front/{CLIP}", params={"access_token": bad_token})
        good = token("alice", "customer", customer_id="c1")
        c.get(
            f"/v1/footage/c1/front/{CLIP}?access_token={good}",
            headers={"Authorization": f"Bearer {good}"},
        )
        c.get(
            f"/v1/footage/c1/front/{CLIP}",
            headers={"Authorization": f"Bearer {good}", "X-Request-ID": good[:64]},
        )
        # A request the HTTP server itself refuses: uvicorn logs a warning of its own.
        raw_request(gateway.url, [b"GET /v1/footage/c1/fr\xc3\xb6nt/x HTTP/1.1", b"Host: x"])
        # Let every access.complete land before the log is read.
        count = len(all_events(env.settings.database_url))
        wait_until(
            lambda: sum(1 for line in gateway.log_lines() if '"audit_event"' in line) >= count,
            10,
            "the audit log lines",
        )
    return {"tokens": tokens, "answered": answered}


def records(gateway: GatewayProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway.log_lines() if line.strip()]


def test_every_stderr_line_is_one_json_object(logged, exercised) -> None:
    _, gateway = logged
    for number, line in enumerate(gateway.log_lines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line {number} is not JSON: {line[:200]!r}")
        assert isinstance(record, dict) and isinstance(record.get("event"), str), line[:200]
    uvicorn = [r for r in records(gateway) if "Invalid HTTP request" in r["event"]]
    assert uvicorn, "uvicorn's own warning should be a JSON record too"


def test_no_forged_record_ever_stands_on_its_own_line(logged, exercised) -> None:
    _, gateway = logged
    for record in records(gateway):
        assert record.get("principal") != "forged"
        assert record.get("event") in ("audit_event",) or "forged" not in record.get("event", "")


@pytest.mark.parametrize("name", [*HOSTILE_JUSTIFICATIONS, *HOSTILE_USER_AGENTS])
def test_a_hostile_header_stays_one_escaped_record(logged, exercised, name: str) -> None:
    env, gateway = logged
    status, headers = exercised["answered"][name]
    if status is None or "x-audit-event-id" not in headers:
        # The HTTP parser refused it outright (400 before the app): nothing to log but that.
        assert status in (None, 400), status
        return
    event_id = headers["x-audit-event-id"]
    stored = trace(env.settings.database_url, headers["x-request-id"])
    decision = next(e for e in stored if e["event_id"] == event_id)
    lines = [line for line in gateway.log_lines() if event_id in line]
    lines = [line for line in lines if json.loads(line).get("event_id") == event_id]
    assert len(lines) == 1, f"{len(lines)} log lines are event {event_id}"
    logged_record = json.loads(lines[0])
    assert logged_record["event"] == "audit_event"
    assert logged_record["justification"] == decision["justification"]
    assert logged_record["user_agent"] == decision["user_agent"]
    for text in (lines[0],):
        assert "\n" not in text and "\r" not in text and "\x1b" not in text
        assert "\u2028" not in text and "\u0085" not in text


def test_a_multiline_reason_in_a_json_body_is_one_record(logged, exercised) -> None:
    env, gateway = logged
    _, headers = exercised["answered"]["suspension"]
    events = trace(env.settings.database_url, headers["x-request-id"])
    suspended = next(e for e in events if e["type"] == "principal.suspended")
    lines = [r for r in gateway.log_lines() if suspended["event_id"] in r]
    lines = [r for r in lines if json.loads(r).get("event_id") == suspended["event_id"]]
    assert len(lines) == 1
    assert json.loads(lines[0])["detail"]["reason"] == suspended["detail"]["reason"]
    assert "\n" in suspended["detail"]["reason"]  # kept as given in the audit log, escaped in logs


def test_every_audit_event_is_exactly_one_log_line(logged, exercised) -> None:
    env, gateway = logged
    stored = all_events(env.settings.database_url)
    logged_ids = [r["event_id"] for r in records(gateway) if r["event"] == "audit_event"]
    assert sorted(logged_ids) == sorted(e["event_id"] for e in stored)


def test_no_token_ever_appears_in_any_log_line(logged, exercised) -> None:
    _, gateway = logged
    text = Path(gateway.log_path).read_text(errors="replace")
    assert exercised["tokens"]
    for token in exercised["tokens"]:
        # The whole token, its claims and its signature (the header segment is the same for
        # every token of one algorithm, so it proves nothing either way).
        _, payload, signature = token.split(".")
        for part in (token, payload, signature):
            if len(part) >= 16:
                assert part not in text, "a bearer token (or a segment of one) reached the log"
