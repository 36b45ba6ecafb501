"""`footage-gateway storage check` on both backends: a real directory and moto's S3 server.

The command runs as a subprocess, as an operator runs it; the S3 run talks real HTTP to moto.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from gateway.retention import expired_clips
from gateway.settings import load_settings
from gateway.storage import open_inventory
from gateway.storage.check import check_storage
from gateway.storage.fs import FileStorage

CLIP = "20261128T101500Z.mp4"

# Each misnamed path, and the words its line must carry.
MISNAMED = {
    "loose-file": "3",  # one part instead of three
    "cust1/notes.txt": "3",
    "bad.name/cam1/" + CLIP: "customer id",
    "cust1/cam 1/" + CLIP: "camera id",
    "cust1/cam1/clip.mp4": "clip id",
    "cust1/cam1/20261399T000000Z.mp4": "clip id",  # the shape of a time, but none
    "cust1/cam1/" + CLIP + ".bak": "clip id",
    "cust1/cam1/nested/" + CLIP: "3",
    "cust1/cam1/.put-leftover": "clip id",
}
GOOD = ["cust1/cam1/" + CLIP, "cust1/cam-2/20261128T101600Z-b.mkv", "c_2/x/20200101T000000Z"]


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gateway", "storage", "check"],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def problems(stdout: str) -> dict[str, str]:
    """The problem lines of a report, by path (the summary line left out)."""
    lines = stdout.splitlines()
    assert lines and "object(s) checked" in lines[-1], stdout
    return dict(line.split(": ", 1) for line in lines[:-1])


def assert_names_every_misnamed(
    result: subprocess.CompletedProcess[str], found: dict[str, str], others: int
) -> None:
    """`found` (the other problems popped) names exactly MISNAMED, each with its reason, and
    the summary counts every object and problem, `others` more besides."""
    assert found.keys() == MISNAMED.keys()
    for path, words in MISNAMED.items():
        assert words in found[path], (path, found[path])
    total = len(GOOD) + len(MISNAMED) + others
    checked = f"{total} object(s) checked, {len(MISNAMED) + others} problem(s)\n"
    assert result.stdout.endswith(checked)


def fill_directory(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")


def test_a_clean_directory_exits_0(tmp_path: Path) -> None:
    fill_directory(tmp_path / "footage", GOOD)
    result = run({"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 object(s) checked, 0 problem(s)\n"


def test_a_directory_names_every_misnamed_file_symlink_and_fifo(tmp_path: Path) -> None:
    root = tmp_path / "footage"
    fill_directory(root, GOOD + list(MISNAMED))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / CLIP).write_bytes(b"not footage")
    (root / "cust1" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "cust1" / "cam1" / "20261128T101700Z.mp4").symlink_to(root / GOOD[0])
    os.mkfifo(root / "cust1" / "cam1" / "20261128T101800Z.mp4")
    result = run({"FOOTGW_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    found = problems(result.stdout)
    assert "symlink" in found.pop("cust1/linked")  # named, never followed into "outside"
    assert "symlink" in found.pop("cust1/cam1/20261128T101700Z.mp4")
    assert "not a regular file" in found.pop("cust1/cam1/20261128T101800Z.mp4")
    assert_names_every_misnamed(result, found, others=3)


def test_a_bucket_names_every_misnamed_key(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint)
    try:
        for key in GOOD + list(MISNAMED) + ["cust1/cam1/"]:  # a "directory marker" too
            client.put_object(Bucket=bucket, Key=f"site/{key}", Body=b"x")
        client.put_object(Bucket=bucket, Key="elsewhere/misnamed", Body=b"x")  # not ours
    finally:
        client.close()
    env = {"FOOTGW_STORAGE": f"s3://{bucket}/site", "FOOTGW_S3_ENDPOINT_URL": endpoint}
    result = run(env)
    assert result.returncode == 1, result.stderr
    found = problems(result.stdout)
    assert "clip id" in found.pop("cust1/cam1/")
    assert_names_every_misnamed(result, found, others=1)


def test_a_clean_bucket_exits_0(s3_bucket: tuple[str, str]) -> None:
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint)
    try:
        for key in GOOD:
            client.put_object(Bucket=bucket, Key=key, Body=b"x")
    finally:
        client.close()
    result = run({"FOOTGW_STORAGE": f"s3://{bucket}", "FOOTGW_S3_ENDPOINT_URL": endpoint})
    assert (result.returncode, result.stdout) == (0, "3 object(s) checked, 0 problem(s)\n")


def test_a_missing_bucket_exits_2_with_one_line(s3_server: str) -> None:
    env = {"FOOTGW_STORAGE": "s3://no-such-bucket-here", "FOOTGW_S3_ENDPOINT_URL": s3_server}
    result = run(env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("footage-gateway: storage unavailable:")
    assert len(result.stderr.splitlines()) == 1


def test_a_storage_directory_that_does_not_exist_exits_2_and_is_not_made(tmp_path: Path) -> None:
    """A mistyped FOOTGW_STORAGE is not an empty, clean store: the check names it and stops,
    as `serve` does, and makes nothing (only the embedded default is created)."""
    missing = tmp_path / "footgae"
    env = {"FOOTGW_DATA_DIR": str(tmp_path), "FOOTGW_STORAGE": f"file://{missing}"}
    result = run(env)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "FOOTGW_STORAGE" in line and str(missing) in line
    assert not missing.exists()


@pytest.mark.anyio
async def test_a_name_cannot_forge_a_line_of_the_report(tmp_path: Path) -> None:
    root = tmp_path / "footage"
    (root / "cust1" / "cam1").mkdir(parents=True)
    (root / "cust1" / "cam1" / "x\n20261128T101500Z.mp4: fine").write_bytes(b"x")
    os.mkdir(root / os.fsdecode(b"caf\xe9"))
    (root / os.fsdecode(b"caf\xe9") / "f").write_bytes(b"x")
    out = io.StringIO()
    assert await check_storage(FileStorage(root), out) == 1
    lines = out.getvalue().splitlines()
    assert lines == [
        r"caf\xe9/f: not customer/camera/clip: 2 path part(s) instead of 3",
        r"'cust1/cam1/x\n20261128T101500Z.mp4: fine': clip id is not "
        "YYYYMMDDTHHMMSSZ[-suffix][.ext], a real time, at most 64 characters",
        "2 object(s) checked, 2 problem(s)",
    ]


@pytest.mark.anyio
async def test_retention_takes_exactly_the_clips_the_check_passes(tmp_path: Path) -> None:
    # One reading of a path (gateway.storage.paths): what the check names, retention leaves.
    root = tmp_path / "footage"
    fill_directory(root, GOOD + list(MISNAMED))
    inventory = open_inventory(load_settings({"FOOTGW_STORAGE": f"file://{root}"}))
    future = datetime(2100, 1, 1, tzinfo=UTC)
    swept = sorted([clip.key async for clip in expired_clips(inventory, future)])
    assert swept == sorted(GOOD)
    await inventory.close()
