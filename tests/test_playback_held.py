"""A session's clip file kept open between its requests (gateway/playback/held.py) never serves
what a fresh open would not: a deleted, replaced, rewritten or moved clip, a symlink swapped in
on its path, an ended session. And it lets go of the file: idle, refused, at shutdown."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import NotFound
from gateway.playback.held import HeldClips
from gateway.storage.fs import FileStorage
from gateway.types import ClipRef, Zone, clip_recorded_at
from tests.support.server import Live, wait_for

CLIP = "20261127T101500Z.mp4"
DATA = bytes(range(256)) * 400


@pytest.fixture
def home(live: Live) -> Live:
    live.env.set_zone("c1", "front", Zone.OUTDOOR)
    live.env.put_clip("c1", "front", CLIP, DATA)
    return live


def footage(live: Live) -> Path:
    return Path(live.env.settings.storage.removeprefix("file://"))


def alice(live: Live) -> dict[str, str]:
    return live.env.auth("alice", "customer", customer_id="c1")


def start(live: Live) -> dict[str, str]:
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    r = live.client.post("/v1/playback", json=body, headers=alice(live))
    assert r.status_code == 201, r.text
    found: dict[str, str] = r.json()
    return found


def held(live: Live) -> HeldClips:
    found = live.services.playback.held
    assert found is not None  # the file store, proxy mode, openat2: every test machine here
    return found


def open_on(path: Path) -> list[str]:
    """This process's descriptors open on `path` (the live server runs in this process)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


def first_range(live: Live, url: str) -> tuple[int, bytes]:
    r = live.client.get(url, headers={"Range": "bytes=0-9"})
    return r.status_code, r.content


def test_the_clip_is_held_between_requests_and_served_unchanged(home):
    url = start(home)["url"]
    for start_byte in (0, 100, 5000):
        r = home.client.get(url, headers={"Range": f"bytes={start_byte}-{start_byte + 99}"})
        assert r.status_code == 206 and r.content == DATA[start_byte : start_byte + 100]
    assert len(held(home)) == 1
    assert home.client.get(url).content == DATA


def test_a_deleted_clip_is_not_served_by_the_next_request(home):
    url = start(home)["url"]
    assert first_range(home, url) == (206, DATA[:10])
    path = footage(home) / "c1" / "front" / CLIP
    path.unlink()  # as retention and a customer's delete remove it (FileStorage.delete)
    r = home.client.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert len(held(home)) == 0
    assert not [t for t in open_on(path.parent) if t.endswith("(deleted)")]  # let go of at once


def test_a_clip_still_linked_elsewhere_is_not_served_once_its_path_is_gone(home):
    url = start(home)["url"]
    assert first_range(home, url) == (206, DATA[:10])
    path = footage(home) / "c1" / "front" / CLIP
    os.link(path, footage(home) / "elsewhere.mp4")  # st_nlink stays above 0 after the unlink
    path.unlink()
    assert first_range(home, url)[0] == 404


def test_a_replaced_clip_is_served_as_a_fresh_open_serves_it(home):
    url = start(home)["url"]
    before = home.client.get(url, headers={"Range": "bytes=0-9"})
    new = bytes(reversed(DATA))
    home.env.put_clip("c1", "front", CLIP, new)  # a new inode at the path (os.replace)
    after = home.client.get(url, headers={"Range": "bytes=0-9"})
    assert after.status_code == 206 and after.content == new[:10]
    assert after.headers["etag"] != before.headers["etag"]


def test_a_clip_rewritten_in_place_is_served_with_its_new_validators(home):
    url = start(home)["url"]
    before = home.client.get(url, headers={"Range": "bytes=0-9"})
    path = footage(home) / "c1" / "front" / CLIP
    with open(path, "r+b") as handle:  # the same inode, shorter and newer
        handle.truncate(1000)
    after = home.client.get(url)
    assert after.status_code == 200 and after.content == DATA[:1000]
    assert after.headers["content-length"] == "1000"
    assert after.headers["etag"] != before.headers["etag"]


def test_a_symlink_swapped_onto_the_path_is_not_followed_even_to_the_same_file(home):
    url = start(home)["url"]
    assert first_range(home, url) == (206, DATA[:10])
    camera = footage(home) / "c1" / "front"
    aside = footage(home) / "aside"
    camera.rename(aside)
    camera.symlink_to(aside)  # the same inode is at the end of the path, through a symlink
    r = home.client.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 404  # as a fresh open refuses it (open_beneath: no symlink)


def test_an_ended_session_is_refused_and_its_file_let_go(home):
    session = start(home)
    assert first_range(home, session["url"]) == (206, DATA[:10])
    r = home.client.delete(f"/v1/playback/{session['session_id']}", headers=alice(home))
    assert r.status_code == 204
    refused = home.client.get(session["url"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "playback_ended"
    assert len(held(home)) == 0


def test_revocation_still_ends_playback_with_the_clip_held(home):
    # tests/test_playback.py has revocation and suspension end-to-end; here two sessions hold.
    grant = {
        "grantee": "sam",
        "purpose": "customer_support",
        "cameras": ["front"],
        "footage_from": "2026-11-27T00:00:00Z",
        "footage_until": "2026-11-27T12:00:00Z",
        "expires_at": (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ticket": "TICKET-7",
        "include_private": False,
    }
    staff = {"X-Access-Purpose": "customer_support", "X-Access-Justification": "TICKET-7 replay"}
    sam = home.env.auth("sam", "support_agent", **staff)
    made = home.client.post("/v1/grants", json=grant, headers=alice(home))
    assert made.status_code == 201, made.text
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    urls = [home.client.post("/v1/playback", json=body, headers=sam).json()["url"] for _ in "ab"]
    for url in urls:
        assert first_range(home, url) == (206, DATA[:10])
    assert len(held(home)) == 2
    revoked = home.client.delete(f"/v1/grants/{made.json()['grant_id']}", headers=alice(home))
    assert revoked.status_code == 200
    for url in urls:
        wait_for(lambda url=url: first_range(home, url)[0] == 403, timeout=1.5)
    assert len(held(home)) == 0


def clip_ref() -> ClipRef:
    recorded = clip_recorded_at(CLIP)
    assert recorded is not None
    return ClipRef("c1", "front", CLIP, recorded)


def test_an_idle_file_is_closed_and_a_borrowed_one_only_once_returned(tmp_path):
    (tmp_path / "c1" / "front").mkdir(parents=True)
    path = tmp_path / "c1" / "front" / CLIP
    path.write_bytes(DATA)

    async def run() -> None:
        clips = HeldClips(FileStorage(tmp_path), idle=0.05)
        first = await clips.open("pb_1", clip_ref)
        await first.close()
        borrowed = await clips.open("pb_1", clip_ref)  # held: the same descriptor
        assert open_on(path) == [str(path)]
        clips.drop("pb_1")  # let go of while a response still reads it
        assert open_on(path) == [str(path)]
        assert [c async for c in borrowed.read(0, 9)] == [DATA[:10]]
        await borrowed.close()
        assert open_on(path) == []
        await (await clips.open("pb_2", clip_ref)).close()
        assert len(clips) == 1
        await asyncio.sleep(0.2)  # the sweep
        assert len(clips) == 0 and open_on(path) == []
        path.unlink()
        with pytest.raises(NotFound):
            await clips.open("pb_3", clip_ref)
        clips.close()

    asyncio.run(run())


def test_at_most_the_limit_is_held(tmp_path):
    (tmp_path / "c1" / "front").mkdir(parents=True)
    (tmp_path / "c1" / "front" / CLIP).write_bytes(DATA)

    async def run() -> None:
        clips = HeldClips(FileStorage(tmp_path), limit=3)
        for i in range(5):
            await (await clips.open(f"pb_{i}", clip_ref)).close()
        assert len(clips) == 3
        clips.close()
        assert len(clips) == 0 and open_on(tmp_path) == []

    asyncio.run(run())
