"""The same gateway on S3 (moto's standalone server over real HTTP): view, range, delete,
retention. Storage is the only thing that changes; every rule must hold the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

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


# Deletion that really deletes (docs/contract.md §4): on a versioned bucket, every version goes,
# or a lock refuses it with 409 `deletion_blocked`, and `footage.delete_failed` says which.


def events_of(live, event_type: str) -> list[dict]:
    analyst = live.env.auth("ana", "security_analyst")
    listed = live.client.get("/v1/audit/events", params={"limit": 1000}, headers=analyst)
    return [e for e in listed.json()["events"] if e["type"] == event_type]


def versions_of(live, key: str) -> dict[str, bool]:
    """Every version id of one exact key, and whether it is a delete marker."""
    client = boto3.client("s3", endpoint_url=live.endpoint)
    listed = client.list_object_versions(Bucket=live.bucket, Prefix=key)
    client.close()
    found = {v["VersionId"]: False for v in listed.get("Versions", []) if v["Key"] == key}
    found.update({m["VersionId"]: True for m in listed.get("DeleteMarkers", []) if m["Key"] == key})
    return found


@pytest.fixture(params=["versioned", "object lock"])
def versioned_live(request, tmp_path, s3_server):
    """A gateway on a versioned bucket (or one with object lock, which versions too) whose
    clips have two versions each; the newest CLIP is under a legal hold in the locked bucket."""
    bucket = f"versioned-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server)
    locked = request.param == "object lock"
    if locked:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for clip in (CLIP, OLD):
        key = f"footage/c1/front/{clip}"
        client.put_object(Bucket=bucket, Key=key, Body=b"an earlier take")
        hold = {"ObjectLockLegalHoldStatus": "ON"} if locked else {}
        client.put_object(Bucket=bucket, Key=key, Body=DATA, **hold)
    client.close()
    env = make_env(
        tmp_path,
        {
            "FOOTGW_STORAGE": f"s3://{bucket}/footage",
            "FOOTGW_S3_ENDPOINT_URL": s3_server,
            "FOOTGW_RETENTION_DAYS": "365",
        },
    )
    with start_live(env) as running:
        running.bucket, running.endpoint, running.locked = bucket, s3_server, locked
        yield running


def test_owner_delete_removes_every_version_or_is_refused_by_the_lock(versioned_live):
    live = versioned_live
    key = f"footage/c1/front/{CLIP}"
    before = versions_of(live, key)
    assert len(before) == 2
    r = live.client.delete(f"/v1/footage/c1/front/{CLIP}", headers=owner(live))
    event_id = r.headers["x-audit-event-id"]
    assert r.headers["cache-control"] == "private, no-store"
    if live.locked:
        assert r.status_code == 409 and r.json()["error"]["code"] == "deletion_blocked"
        assert versions_of(live, key) == before  # nothing removed, not even a marker added
        [requested] = events_of(live, "footage.delete_requested")
        [event] = events_of(live, "footage.delete_failed")
        assert event["event_id"] == event_id and event["status"] == 409
        assert event["reason"] == "deletion_blocked" and event["principal"] == "alice"
        assert event["detail"]["requested_event_id"] == requested["event_id"]
        assert len(event["detail"]["blocked"]) == 1 and event["detail"]["removed"] == []
        assert event["detail"]["blocked"][0] in before
        assert events_of(live, "footage.deleted") == []
        still = live.client.get(f"/v1/footage/c1/front/{CLIP}", headers=owner(live))
        assert still.status_code == 200 and still.content == DATA
        return
    assert r.status_code == 204
    assert versions_of(live, key) == {}  # no delete marker, no earlier take: nothing left
    [event] = events_of(live, "footage.deleted")
    assert event["event_id"] == event_id
    removed = event["detail"]["removed"]
    assert {v["version_id"] for v in removed} == set(before)
    assert all(v["delete_marker"] is False for v in removed)


def test_retention_removes_every_version_or_reports_the_lock(versioned_live):
    live = versioned_live
    key = f"footage/c1/front/{OLD}"
    before = versions_of(live, key)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    env.update(live.env.env)
    applied = subprocess.run(
        [sys.executable, "-m", "gateway", "retention", "enforce", "--apply"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if live.locked:
        assert applied.returncode == 1, applied.stderr
        assert f"blocked c1/front/{OLD}" in applied.stdout
        assert versions_of(live, key) == before
        [event] = events_of(live, "footage.delete_failed")
        assert event["principal"] == "system:retention" and event["clip_id"] == OLD
        assert event["reason"] == "deletion_blocked" and event["action"] == "retention.purge"
        assert event["detail"]["retention_days"] == 365
        assert event["detail"]["blocked"] and event["detail"]["blocked"][0] in before
        assert events_of(live, "footage.deleted") == []
        return
    assert applied.returncode == 0, applied.stderr
    assert f"deleted c1/front/{OLD}" in applied.stdout
    assert versions_of(live, key) == {}
    [event] = events_of(live, "footage.deleted")
    assert {v["version_id"] for v in event["detail"]["removed"]} == set(before)
    assert len(versions_of(live, f"footage/c1/front/{CLIP}")) == 2  # within retention: kept
