"""Real video for the playback tests: the demo's H.264 clip, and a long remux of it.

The same JavaScript checks drive Chromium (Playwright) and Firefox (WebDriver BiDi): a clip
"plays" when its <video> has data (readyState >= 2), currentTime advances, and after a seek to
the middle it plays on from there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.demo.seeding import TEST_PATTERN

LOOPS = 200  # the long clip: 200 x 10 s
VIDEO = "document.querySelector('.player video')"
HAS_DATA = f"(() => {{ const v = {VIDEO}; return Boolean(v) && v.readyState >= 2; }})()"
PLAY_MUTED = f"(() => {{ const v = {VIDEO}; v.muted = true; return v.play().then(() => true); }})()"
# Seek to a part of the clip the browser has not fetched yet (so it must ask the gateway), again
# after each seek completes; true once the video has failed or the console says it stopped.
SEEK_UNTIL_REFUSED = f"""(() => {{
  const v = {VIDEO};
  if (v.error || document.querySelector('.player .refusal')) return true;
  if (v.seeking) return false;
  const held = (t) => [...Array(v.buffered.length).keys()].some(
    (i) => v.buffered.start(i) <= t && t <= v.buffered.end(i));
  let t = v.duration * 0.95;
  while (t > 0 && held(t)) t -= v.duration * 0.04;
  if (t > 0) v.currentTime = t;
  return false;
}})()"""


def playing_from(seconds: float) -> str:
    """True once the video has finished seeking and plays on past `seconds` (+0.5 s)."""
    past = f"v.currentTime > {seconds + 0.5}"
    return f"(() => {{ const v = {VIDEO}; return !v.seeking && !v.paused && {past}; }})()"


def seek_to(seconds: float) -> str:
    return f"(() => {{ {VIDEO}.currentTime = {seconds}; return true; }})()"


def make_long_clip(directory: Path) -> bytes:
    """The demo clip looped LOOPS times without re-encoding (2000 s, about 11 MB): larger than a
    browser reads ahead, so a seek far into it is a new request to the gateway. The 55 KB clip
    itself arrives whole in the first response, after which a browser asks for nothing more."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (`make browser` installs it)")
    out = directory / "long.mp4"
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-stream_loop", str(LOOPS - 1)]
    command += ["-i", str(TEST_PATTERN), "-c", "copy", "-movflags", "+faststart", str(out)]
    subprocess.run(command, check=True, timeout=120)
    return out.read_bytes()
