"""Real players through playback URLs: ffprobe in proxy mode, and in redirect mode against the
SigV4-checking gate (moto alone checks no signature), `curl -L -C -` resuming and ffprobe
following the 307 with its own ranges (contract §12)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from gateway.types import Zone
from tests.support.server import Live, make_env, start_live, wait_for
from tests.support.sigv4_gate import GatedMotoServer, PresignGate

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("curl") is None,
    reason="ffmpeg and curl are not installed (make browser installs them)",
)

CLIP = "20261127T101500Z.mp4"
SECONDS = 3


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tiny real H.264 MP4 (a test pattern), made here by ffmpeg."""
    out = tmp_path_factory.mktemp("clip") / "clip.mp4"
    pattern = f"testsrc=size=160x120:rate=10:duration={SECONDS}"
    encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out)]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", pattern, *encode],
        check=True,
        timeout=120,
    )
    return out.read_bytes()


def ffprobe_duration(url: str) -> float:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return float(json.loads(done.stdout)["format"]["duration"])


def start(live: Live) -> dict[str, str]:
    headers = live.env.auth("alice", "customer", customer_id="c1")
    body = {"customer_id": "c1", "camera_id": "front", "clip_id": CLIP}
    r = live.client.post("/v1/playback", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def summary(live: Live, session_id: str) -> dict[str, int]:
    sessions = live.client.get(
        "/v1/playback", headers=live.env.auth("alice", "customer", customer_id="c1")
    ).json()["sessions"]
    return next(s for s in sessions if s["session_id"] == session_id)


def test_ffprobe_reads_the_duration_through_a_playback_url(tmp_path: Path, h264: bytes) -> None:
    env = make_env(tmp_path)
    env.put_clip("c1", "front", CLIP, h264)
    with start_live(env) as live:
        body = start(live)
        assert abs(ffprobe_duration(live.url + body["url"]) - SECONDS) < 0.2
        wait_for(lambda: summary(live, body["session_id"])["requests"] >= 1)


@pytest.fixture(scope="module")
def redirecting(
    aws_env: None, h264: bytes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Live, PresignGate]]:
    server = GatedMotoServer({"testing": "testing"})
    endpoint = server.start()
    bucket = f"play-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=f"c1/front/{CLIP}", Body=h264)
    client.close()
    env = make_env(
        tmp_path_factory.mktemp("play-redirect"),
        {
            "FOOTGW_STORAGE": f"s3://{bucket}",
            "FOOTGW_S3_ENDPOINT_URL": endpoint,
            "FOOTGW_DELIVERY": "redirect",
        },
    )
    env.set_zone("c1", "front", Zone.OUTDOOR)
    live = start_live(env)
    try:
        yield live, server.gate
    finally:
        live.close()
        server.stop()


def test_redirect_signs_no_range_and_players_send_their_own(
    redirecting: tuple[Live, PresignGate], h264: bytes, tmp_path: Path
) -> None:
    live, gate = redirecting
    gate.seen[:] = []
    body = start(live)
    url = live.url + body["url"]
    r = live.client.get(body["url"], headers={"Range": "bytes=0-99"})
    assert r.status_code == 307 and r.headers["referrer-policy"] == "no-referrer"
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert "range" not in query["X-Amz-SignedHeaders"][0].split(";")
    assert int(query["X-Amz-Expires"][0]) <= 60
    # curl resuming a partial download: its own `Range: bytes=N-` goes through to S3.
    partial = tmp_path / "clip.mp4"
    partial.write_bytes(h264[:1000])
    subprocess.run(["curl", "-sSfL", "-C", "-", "-o", str(partial), url], check=True, timeout=60)
    assert partial.read_bytes() == h264
    assert any(seen.get("range") == "bytes=1000-" for seen in gate.seen)
    assert all("authorization" not in seen for seen in gate.seen)
    assert abs(ffprobe_duration(url) - SECONDS) < 0.2
    wait_for(lambda: summary(live, body["session_id"])["requests"] >= 3)
