"""FOOTGW_DELIVERY=accel through playback URLs: nginx sends the bytes, the gateway checks the
session and records the request (contract §10, §12). Runs deploy/nginx-accel.conf itself."""

from __future__ import annotations

from tests.support.server import wait_for
from tests.test_accel import DATA, Stack, stack  # noqa: F401 (the module's nginx fixture)

CLIP_BODY = {"customer_id": "cust-a", "camera_id": "cam", "clip_id": "20261128T101500Z.mp4"}


def test_a_playback_url_is_served_by_nginx_in_accel_mode(stack: Stack) -> None:  # noqa: F811
    r = stack.client.post("/v1/playback", json=CLIP_BODY, headers=stack.owner())
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    whole = stack.client.get(url)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["referrer-policy"] == "no-referrer"
    assert whole.headers["cache-control"] == "private, no-store"
    assert "x-accel-redirect" not in whole.headers
    part = stack.client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == DATA[1000:2000]
    listed = lambda: stack.client.get("/v1/playback", headers=stack.owner()).json()["sessions"]  # noqa: E731
    [session] = wait_for(lambda: (found := listed()) and found[0]["requests"] == 2 and found)
    assert session["bytes_sent"] == 0  # nginx sent them: not counted as the gateway's
    refused = stack.client.get(url[:-1] + ("A" if url[-1] != "A" else "B"))
    assert refused.status_code == 404
