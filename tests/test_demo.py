"""`make run`'s promise: the printed curl lines each do what their comment says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.demo.seeding import clip_bytes
from tests.support.server import free_port

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def demo(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    env.update(
        FOOTGW_DEV_MODE="1",
        FOOTGW_PORT=str(port),
        FOOTGW_DATA_DIR=str(tmp_path / "var"),
        FOOTGW_LOG_FORMAT="json",
    )
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo"],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded wait for the server to listen
            assert proc.poll() is None, "the demo exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.1)
        yield out.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_every_printed_line_does_what_it_says(demo):
    script = demo[demo.index("# Tokens") : demo.index("# Web console")]
    result = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    views = re.findall(r"-> HTTP (\d+), (\d+) bytes", out)
    assert views[0] == ("200", str(len(clip_bytes())))  # 1. the owner watches
    assert out.count('"code":"no_grant"') == 2  # 2. refused, 8. refused again after revoke
    assert "HTTP/1.1 206 Partial Content" in out and "content-range: bytes 0-1023/" in out  # 3.
    assert '"events":[{' in out  # 4. the analyst reads the log
    assert re.search(r"^gr_[\w-]+$", out, re.M)  # 5. the grant
    assert views[1] == ("200", str(len(clip_bytes())))  # 6. the agent watches under the grant
    assert '"principal":"sam@support"' in out  # 7. Alice sees Sam's view
    assert views[2][0] == "200"  # 8. the revoke
    assert '"ok":true' in out  # 9. the chain verifies


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed (ffmpeg)")
def test_the_demo_clip_is_a_real_h264_mp4_that_starts_from_its_first_bytes():
    """What `make run` serves plays anywhere: H.264 baseline, 4:2:0, the index (moov) up front."""
    data = clip_bytes()
    assert len(data) < 100 * 1024  # small enough to commit and to seed on every camera
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-"],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    info = json.loads(probe.stdout)
    (video,) = info["streams"]
    assert (video["codec_name"], video["profile"]) == ("h264", "Constrained Baseline")
    assert video["pix_fmt"] == "yuv420p"
    assert float(info["format"]["duration"]) == pytest.approx(10.0, abs=0.1)
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
