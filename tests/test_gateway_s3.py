"""The same gateway on S3 (moto's standalone server over real HTTP): view, range, delete,
retention. Storage is the only thing that changes; every rule must hold the same way."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from tests.support.server import make_env, start_live

CLIP = "20261127T101500Z.mp4"
OLD = "20200101T000000Z.mp4"
DATA = bytes(range(256)) * 8192  # 2 MiB


@pytest.fixture
def s3_live(tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    env = make_env(
        tmp_path,
        {
            "FOOTGW_STORAGE": f"s3://{bucket}/footage",
            "FOOTGW_S3_ENDPOINT_URL": endpoint,
            "FOOTGW_RETENTION_DAYS": "365",
        },
    )
    env.put_clip("c1", "front", CLIP, DATA)
    env.put_clip("c1", "front", OLD, b"old footage")
    with start_live(env) as running:
        running.bucket, running.endpoint = bucket, endpoint
        yield running


def owner(live):
    return live.env.auth("alice", "customer", customer_id="c1")


def keys(live) -> set[str]:
    client = boto3.client("s3", endpoint_url=live.endpoint)
    listed = client.list_objects_v2(Bucket=live.bucket)
    client.close()
    return {o["Key"] for o in listed.get("Contents", [])}


def test_owner_streams_and_ranges_from_s3(s3_live):
    whole = s3_live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(s3_live))
    assert whole.status_code == 200 and whole.content == DATA
    part = s3_live.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers={**owner(s3_live), "Range": "bytes=1000-1999"}
    )
    assert part.status_code == 206 and part.content == DATA[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(DATA)}"
    tail = s3_live.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers={**owner(s3_live), "Range": "bytes=-10"}
    )
    assert tail.content == DATA[-10:]
    bad = s3_live.client.get(
        f"/v1/footage/c1/front/{CLIP}", headers={**owner(s3_live), "Range": f"bytes={len(DATA)}-"}
    )
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(DATA)}"


def test_other_customers_are_refused_before_s3_is_asked(s3_live):
    bob = s3_live.env.auth("bob", "customer", customer_id="c2")
    r = s3_live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=bob)
    assert r.status_code == 403 and DATA[:64] not in r.content


def test_footage_past_retention_is_410_for_the_owner(s3_live):
    r = s3_live.client.get(f"/v1/footage/c1/front/{OLD}", headers=owner(s3_live))
    assert r.status_code == 410 and r.json()["error"]["code"] == "retention_expired"
    listed = s3_live.client.get("/v1/footage/c1/front", headers=owner(s3_live)).json()["clips"]
    assert [c["clip_id"] for c in listed] == [CLIP]


def test_delete_removes_the_object_from_the_bucket(s3_live):
    assert f"footage/c1/front/{CLIP}" in keys(s3_live)
    r = s3_live.client.delete(f"/v1/footage/c1/front/{CLIP}", headers=owner(s3_live))
    assert r.status_code == 204
    assert f"footage/c1/front/{CLIP}" not in keys(s3_live)
    assert (
        s3_live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(s3_live)).status_code
        == 404
    )


def test_retention_enforce_purges_from_s3(s3_live):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    env.update(s3_live.env.env)
    run = [sys.executable, "-m", "gateway", "retention", "enforce"]
    listed = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"expired c1/front/{OLD}" in listed.stdout
    applied = subprocess.run(
        [*run, "--apply"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert f"deleted c1/front/{OLD}" in applied.stdout
    assert keys(s3_live) == {f"footage/c1/front/{CLIP}"}
