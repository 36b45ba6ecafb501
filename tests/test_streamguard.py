"""Live streams end when their permission does: revoked, expired, suspended (streamguard.py).

Over real sockets: a staff member streams a clip much larger than the socket buffers, reading
it slowly; the permission ends mid-stream; the rest of the clip must not arrive, and the
stream's access.complete must say why. The streams' re-check clock is the test's own, moved by
hand, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.streamguard import RECHECK_SECONDS, StreamGuard
from gateway.types import Decision, Zone
from tests.support.server import GatewayEnv, Live, start_live, wait_for

CLIP = "20261127T101500Z.mp4"
PATH = f"/v1/footage/c1/front/{CLIP}"
SIZE = 48 * 1024 * 1024  # far beyond what loopback socket buffers can hold in flight
FIRST = 1024 * 1024  # what the client reads before the permission ends
STAFF = {"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-7 question"}


@dataclass
class Ticker:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def home(gateway_env: GatewayEnv) -> Iterator[tuple[Live, Ticker]]:
    gateway_env.set_zone("c1", "front", Zone.OUTDOOR)
    gateway_env.put_clip("c1", "front", CLIP, bytes(SIZE))
    with start_live(gateway_env) as live:
        ticker = Ticker()
        live.services.flow.ticker = ticker
        yield live, ticker


def grant(live: Live, **changes: Any) -> dict[str, Any]:
    body = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticket": "TICKET-7",
        **changes,
    }
    alice = live.env.auth("alice", "customer", customer_id="c1")
    r = live.client.post("/v1/grants", json=body, headers=alice)
    assert r.status_code == 201, r.text
    return dict(r.json())


def stream_until_cut(live: Live, headers: dict[str, str], cut: Any, ticker: Ticker) -> int:
    """Read FIRST bytes, end the permission with `cut()`, move the clock, read on; bytes read."""
    client = httpx.Client(base_url=live.url, timeout=30.0)
    with client, client.stream("GET", PATH, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(SIZE)
        got = 0
        chunks = r.iter_raw(64 * 1024)
        while got < FIRST:
            got += len(next(chunks))
        cut()
        ticker.now += RECHECK_SECONDS + 0.5
        try:
            for chunk in chunks:
                got += len(chunk)
        except httpx.RemoteProtocolError:
            pass  # the server closed the connection short of Content-Length
    return got


def completion(live: Live, principal: str) -> dict[str, Any]:
    """The principal's latest access.complete, once there is one."""
    return dict(wait_for(lambda: latest_completion(live, principal)))


def sam(live: Live) -> dict[str, str]:
    return live.env.auth("sam", "support_agent", **STAFF)


def test_revoking_the_grant_cuts_the_open_stream(home: tuple[Live, Ticker]) -> None:
    live, ticker = home
    granted = grant(live)
    alice = live.env.auth("alice", "customer", customer_id="c1")

    def revoke() -> None:
        r = live.client.delete(f"/v1/grants/{granted['grant_id']}", headers=alice)
        assert r.status_code == 200

    got = stream_until_cut(live, sam(live), revoke, ticker)
    assert got < SIZE
    done = completion(live, "sam")
    assert done["detail"]["completed"] is False
    assert done["detail"]["ended_by"] == "revoked" and done["detail"]["reason"] == "no_grant"
    assert done["bytes_sent"] < SIZE and done["grant_id"] == granted["grant_id"]


def test_deleting_the_clip_cuts_the_open_stream(home: tuple[Live, Ticker]) -> None:
    """An open descriptor keeps a deleted file readable: the owner's delete must still end a
    staff member's stream of it at the next re-check, not when the clip has all been sent."""
    live, ticker = home
    grant(live)
    alice = live.env.auth("alice", "customer", customer_id="c1")

    def delete() -> None:
        r = live.client.delete(PATH, headers=alice)
        assert r.status_code == 204, r.text

    got = stream_until_cut(live, sam(live), delete, ticker)
    assert got < SIZE
    done = completion(live, "sam")
    assert done["detail"]["completed"] is False
    assert done["detail"]["ended_by"] == "deleted" and done["detail"]["reason"] == "clip_deleted"
    assert done["bytes_sent"] < SIZE


def test_a_clip_past_its_retention_mid_stream_is_cut(home: tuple[Live, Ticker]) -> None:
    live, ticker = home
    grant(live)

    def shorten_retention() -> None:  # as a reload with a shorter retention would
        live.services.flow.retention_days = 1  # the clip was recorded on 27 November

    got = stream_until_cut(live, sam(live), shorten_retention, ticker)
    assert got < SIZE
    done = completion(live, "sam")
    assert done["detail"]["ended_by"] == "retention"
    assert done["detail"]["reason"] == "retention_expired"


def test_suspending_the_principal_cuts_the_open_stream(home: tuple[Live, Ticker]) -> None:
    live, ticker = home
    grant(live)
    analyst = live.env.auth("ana", "security_analyst")

    def suspend() -> None:
        r = live.client.post("/v1/principals/sam/suspend", json={}, headers=analyst)
        assert r.status_code == 200, r.text

    assert stream_until_cut(live, sam(live), suspend, ticker) < SIZE
    done = completion(live, "sam")
    assert done["detail"]["completed"] is False and done["detail"]["ended_by"] == "suspended"


def test_a_grant_expiring_mid_stream_cuts_it(home: tuple[Live, Ticker]) -> None:
    live, ticker = home
    grant(live)
    flow = live.services.flow
    later = datetime.now(UTC) + timedelta(hours=2)  # past the grant's expiry

    def expire() -> None:
        flow.clock = lambda: later

    assert stream_until_cut(live, sam(live), expire, ticker) < SIZE
    done = completion(live, "sam")
    assert done["detail"]["completed"] is False and done["detail"]["ended_by"] == "expired"


def test_a_stream_whose_permission_holds_runs_to_the_end(home: tuple[Live, Ticker]) -> None:
    """The negative: re-checks that keep allowing never cut (another grant's revocation, too).
    The re-check did run (it read the time), and is not admitted as another look (contract §8):
    detection's admission saw the one request only."""
    live, ticker = home
    grant(live)
    other = grant(live, grantee="someone-else")
    alice = live.env.auth("alice", "customer", customer_id="c1")
    flow = live.services.flow
    decided: list[datetime] = []
    admitted: list[Decision] = []
    real_admit = flow.admit
    assert real_admit is not None

    def clock() -> datetime:
        decided.append(datetime.now(UTC))
        return decided[-1]

    async def admit(request: Any, decision: Decision, method: str, clip_id: str | None) -> Any:
        admitted.append(decision)
        return await real_admit(request, decision, method, clip_id)

    flow.clock, flow.admit = clock, admit

    def revoke_another() -> None:
        assert live.client.delete(f"/v1/grants/{other['grant_id']}", headers=alice).is_success
        decided.clear()

    assert stream_until_cut(live, sam(live), revoke_another, ticker) == SIZE
    done = completion(live, "sam")
    assert done["detail"]["completed"] is True and "ended_by" not in done["detail"]
    assert decided, "the stream's permission was re-asked after the clock moved"
    assert len(admitted) == 1, "only the opening decision is admitted"


def test_a_revocation_on_another_replica_cuts_the_stream(
    gateway_env: GatewayEnv, home: tuple[Live, Ticker]
) -> None:
    """Replicas share only the database: the revocation lands on one, the stream runs on the
    other, and the stream still stops."""
    streaming, ticker = home
    with start_live(gateway_env) as other:
        granted = grant(other)
        alice = other.env.auth("alice", "customer", customer_id="c1")

        def revoke_elsewhere() -> None:
            r = other.client.delete(f"/v1/grants/{granted['grant_id']}", headers=alice)
            assert r.status_code == 200

        assert stream_until_cut(streaming, sam(streaming), revoke_elsewhere, ticker) < SIZE
    done = completion(streaming, "sam")
    assert done["detail"]["ended_by"] == "revoked"


@pytest.mark.anyio
async def test_guard_asks_again_only_when_due_and_denies_on_error() -> None:
    ticker = Ticker()
    asked: list[int] = []
    answers: list[Decision | Exception] = [Decision.allow("grant"), RuntimeError("db down")]

    async def decide() -> Decision:
        asked.append(1)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def explain(_decision: Decision) -> str:
        raise AssertionError("an error is not explained by a decision")

    guard = StreamGuard(decide, explain, ticker, interval=2.0)
    assert await guard.still_allowed() and not asked  # the opening decision is fresh
    ticker.now += 2.0
    assert await guard.still_allowed() and len(asked) == 1
    ticker.now += 1.0
    assert await guard.still_allowed() and len(asked) == 1  # not due yet: no read at all
    ticker.now += 1.0
    assert not await guard.still_allowed()
    assert guard.ending() == {"ended_by": "recheck_failed", "reason": "error"}
    assert not await guard.still_allowed() and len(asked) == 2  # ended stays ended


def test_a_revoked_stream_ends_within_seconds_for_a_reader_that_slows_down(
    home: tuple[Live, Ticker],
) -> None:
    """The re-check runs between slices of the body; a zero-copy slice grows to 16 MiB for a
    fast reader, and a reader that then slows to a trickle must not keep one open for minutes
    after the revocation: the stream ends (access.complete written) within a few seconds."""
    live, ticker = home
    granted = grant(live)
    alice = live.env.auth("alice", "customer", customer_id="c1")
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        lines = [f"GET {PATH} HTTP/1.1", "Host: x"]
        lines += [f"{name}: {value}" for name, value in sam(live).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        got = 0
        while got < 20 * 1024 * 1024:  # fast: the slices grow to their largest
            got += len(sock.recv(1 << 20))
        r = live.client.delete(f"/v1/grants/{granted['grant_id']}", headers=alice)
        assert r.status_code == 200
        ticker.now += RECHECK_SECONDS + 0.5
        cut = time.monotonic()
        ended = None
        while ended is None and time.monotonic() - cut < RECHECK_SECONDS + 1.5:
            if not sock.recv(16 * 1024):  # a reader at about 320 KB/s
                break
            time.sleep(0.05)
            ended = latest_completion(live, "sam")
        took = time.monotonic() - cut
    assert ended is not None, f"the revoked stream was still open {took:.1f} s after the cut"
    assert ended["detail"]["ended_by"] == "revoked"


def latest_completion(live: Live, principal: str) -> dict[str, Any] | None:
    analyst = live.env.auth("ana", "security_analyst")
    r = live.client.get(
        "/v1/audit/events",
        params={"type": "access.complete", "principal": principal},
        headers=analyst,
    )
    events = r.json()["events"]
    return dict(events[-1]) if events else None


def test_deleting_the_clip_cuts_an_open_playback_stream(home: tuple[Live, Ticker]) -> None:
    """The same through a playback URL: the stream stops, and the URL answers 404 from then on."""
    live, _ticker = home
    alice = live.env.auth("alice", "customer", customer_id="c1")
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    url = live.client.post("/v1/playback", json=body, headers=alice).json()["url"]
    client = httpx.Client(base_url=live.url, timeout=30.0)
    with client, client.stream("GET", url) as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(SIZE)
        got = 0
        chunks = r.iter_raw(64 * 1024)
        while got < FIRST:
            got += len(next(chunks))
        assert live.client.delete(PATH, headers=alice).status_code == 204
        try:
            for chunk in chunks:
                got += len(chunk)
        except httpx.RemoteProtocolError:
            pass  # closed short of Content-Length
    assert got < SIZE
    assert live.client.get(url).status_code == 404
