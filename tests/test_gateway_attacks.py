"""Attacks on the core flow over real HTTP: forged tokens, path escapes, a failing audit log.

Each asserts the status, that no footage byte left, and what the audit log kept: a footage
request that fails authentication is still one access.decision event (contract §7), with no
principal and the reason `unauthenticated`.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import sqlalchemy as sa

from gateway.db import create_db_engine
from tests.support.server import make_env, raw_get, start_live
from tests.support.tokens import claims, hand_built, hmac_token, make_keypair, sign, tamper

CLIP = "20261127T101500Z.mp4"
SECRET = b"FOOTAGE-BYTES-" * 4096
ISSUER, AUDIENCE = "https://idp.example", "footage-gateway"


@pytest.fixture(scope="module")
def rsa_live(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa")
    key = make_keypair("rsa", "k1")
    env = make_env(
        root,
        {
            "FOOTGW_JWT_PUBLIC_KEY_FILE": str(key.write_public_pem(root)),
            "FOOTGW_JWT_ALGORITHMS": "RS256",
            "FOOTGW_JWT_ISSUER": ISSUER,
            "FOOTGW_JWT_AUDIENCE": AUDIENCE,
        },
    )
    env.put_clip("c1", "front", CLIP, SECRET)
    (root / "outside.mp4").write_bytes(SECRET)
    with start_live(env) as running:
        running.key = key
        yield running


def good_claims(**extra):
    return claims("alice", ("customer",), "c1", iss=ISSUER, aud=AUDIENCE, **extra)


def audit_count(live) -> int:
    engine = create_db_engine(live.env.settings.database_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar()
    engine.dispose()
    return int(n or 0)


def audit_event(live, event_id: str) -> dict:
    engine = create_db_engine(live.env.settings.database_url)
    with engine.connect() as conn:
        body = conn.execute(
            sa.text("SELECT body FROM audit_events WHERE event_id = :e"), {"e": event_id}
        ).scalar()
    engine.dispose()
    return json.loads(body)


def forged(key):
    other = make_keypair("rsa", "k1", fresh=True)
    ec = make_keypair("ec", "k1")
    now = time.time()
    return {
        "alg none": hand_built({"alg": "none", "typ": "JWT"}, good_claims()),
        "alg none with kid": hand_built({"alg": "none", "kid": "k1"}, good_claims()),
        "hmac with the public key": hmac_token(good_claims(), key.public_pem()),
        "expired": sign(good_claims(ttl=-120, now=now), key),
        "no exp": sign({k: v for k, v in good_claims().items() if k != "exp"}, key),
        "wrong aud": sign(claims("alice", ("customer",), "c1", iss=ISSUER, aud="other"), key),
        "wrong iss": sign(
            claims("alice", ("customer",), "c1", iss=ISSUER + "/", aud=AUDIENCE), key
        ),
        "unknown kid, other key": sign(good_claims(), other, headers={"kid": "k2"}),
        "right kid, other key": sign(good_claims(), other),
        "bad signature": tamper(sign(good_claims(), key)),
        "other algorithm": sign(good_claims(), ec, headers={"kid": "k1"}),
        "oversized": sign(good_claims(padding="x" * 9000), key),
        "jku header": sign(good_claims(), key, headers={"jku": "http://127.0.0.1:1/jwks"}),
        "crit header": sign(good_claims(), key, headers={"crit": ["exp"]}),
        "roles not a list": sign(claims("alice", "customer", "c1", iss=ISSUER, aud=AUDIENCE), key),
        "two dots": "..",
        "garbage": "not.a.jwt",
    }


ATTACKS = list(forged(make_keypair("rsa", "k1")))


def test_a_good_token_works(rsa_live):
    r = rsa_live.client.get(
        f"/v1/footage/c1/front/{CLIP}",
        headers={"Authorization": f"Bearer {sign(good_claims(), rsa_live.key)}"},
    )
    assert r.status_code == 200 and r.content == SECRET


@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_tokens_are_401_with_no_footage_and_one_anonymous_event(rsa_live, attack):
    token = forged(rsa_live.key)[attack]
    before = audit_count(rsa_live)
    r = rsa_live.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 401, attack
    assert r.json()["error"]["code"] == "unauthenticated"
    assert SECRET[:64] not in r.content
    assert audit_count(rsa_live) == before + 1
    event = audit_event(rsa_live, r.headers["x-audit-event-id"])
    assert event["principal"] is None and event["decision"] == "deny"
    assert event["reason"] == "unauthenticated" and event["status"] == 401
    assert token not in json.dumps(event)  # the token itself is never recorded


ESCAPES = [
    b"/v1/footage/c1/front/../../outside.mp4",
    b"/v1/footage/c1/front/..%2F..%2Foutside.mp4",
    b"/v1/footage/c1/front/%2e%2e%2f%2e%2e%2foutside.mp4",
    b"/v1/footage/c1/..%2F..%2F/outside.mp4",
    b"/v1/footage/c1/front/20261127T101500Z.mp4%00.txt",
    b"/v1/footage/c1/front/20261127T101500Z%2Emp4%2F..",
    b"/v1/footage/c1/fr%C3%B6nt/20261127T101500Z.mp4",
    b"/v1/footage/c1/front/20261127T101500Z..mp4",
    b"/v1/footage/c1/" + b"a" * 65 + b"/20261127T101500Z.mp4",
    b"/v1/footage/c1/front/20261127T101500Z-" + b"a" * 60 + b".mp4",
    b"/v1/footage/c1/front/%252e%252e%252foutside.mp4",
    b"/v1/footage/c1/front/20261127T101500Z.mp4/extra",
    b"/v1/footage/c1%2Ffront/20261127T101500Z.mp4",
]


@pytest.mark.parametrize("path", ESCAPES, ids=[p.decode()[-40:] for p in ESCAPES])
def test_path_escapes_never_reach_storage(rsa_live, path):
    token = sign(good_claims(), rsa_live.key)
    status, _headers, data = raw_get(rsa_live.url, path, token)
    assert status in (400, 404), (path, status)
    assert SECRET[:64] not in data


@pytest.fixture
def sqlite_live(tmp_path):
    env = make_env(tmp_path)
    env.put_clip("c1", "front", CLIP, SECRET)
    with start_live(env) as running:
        yield running


def test_an_audit_log_that_cannot_be_written_serves_nothing_then_recovers(sqlite_live):
    live = sqlite_live
    headers = live.env.auth("alice", "customer", customer_id="c1")
    engine = create_db_engine(live.env.settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        r = live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "audit_unavailable"
        assert SECRET[:64] not in r.content
        assert live.client.get("/readyz").json()["checks"]["audit"] == "ok"  # the lock works
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_events_away RENAME TO audit_events"))
        engine.dispose()
    again = live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=headers)
    assert again.status_code == 200 and again.content == SECRET  # no restart needed


def test_a_locked_audit_database_is_503_not_a_hang(sqlite_live):
    live = sqlite_live
    # Another process holding SQLite's exclusive lock: the gateway must time out, not hang.
    conn = sqlite3.connect(live.env.root / "gateway.db", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        r = live.client.get(
            f"/v1/footage/c1/front/{CLIP}",
            headers=live.env.auth("alice", "customer", customer_id="c1"),
        )
        assert r.status_code == 503 and SECRET[:64] not in r.content
        assert time.monotonic() - started < 15
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    ok = live.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers=live.env.auth("alice", "customer", customer_id="c1")
    )
    assert ok.status_code == 200


def test_two_authorization_headers_are_an_audited_401(sqlite_live):
    live = sqlite_live
    token = live.env.token("alice", "customer", customer_id="c1")
    r = live.client.get(
        f"/v1/footage/c1/front/{CLIP}",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
    )
    assert r.status_code == 401 and SECRET[:64] not in r.content
    event = audit_event(live, r.headers["x-audit-event-id"])
    assert event["reason"] == "unauthenticated" and event["principal"] is None


def test_a_path_that_names_no_clip_is_an_audited_400(sqlite_live):
    live = sqlite_live
    headers = live.env.auth("sam", "support_agent")
    r = live.client.get(f"/v1/footage/c1/front/{CLIP}/extra", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    event = audit_event(live, r.headers["x-audit-event-id"])
    assert event["principal"] == "sam" and event["reason"] == "bad_request"
    assert event["status"] == 400 and event["decision"] == "deny"
    anonymous = live.client.get("/v1/footage/a/b/c/d")
    assert anonymous.status_code == 401 and anonymous.headers["x-audit-event-id"]
