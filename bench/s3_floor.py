"""How fast can anything relay the S3 clip? The gateway, a bare raw-socket relay and boto3 direct.

`python bench/s3_floor.py [PAIRS]`: moto serves the 256 MiB clip; in one run, alternating, the
S3 gateway streams it, a minimal relay (a process of its own that reads moto's response with
recv_into and writes it to the client with sendall, no HTTP framework, no checks) streams it, and
boto3 reads it directly (bench/run.py's baseline). Each relay's ratio to boto3 is the median of
its paired ratios. The bare relay is the floor of any gateway that copies the bytes through its
own sockets: docs/benchmarks.md ("S3 delivery") reads the figures. Writes runs/<time>-s3-floor.json.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import fixtures
import httpclient
import results
import run
import servers
from fixtures import CAMERA, CLIP, CLIP_SIZE, CUSTOMER, MiB
from report import say

BENCH = Path(__file__).resolve().parent


def bare_relay(moto_url: str, listener: socket.socket) -> None:
    """Serve every connection the clip from moto: its head, then recv_into → sendall."""
    moto = urlsplit(moto_url)
    path = f"/{run.BUCKET}/{CUSTOMER}/{CAMERA}/{CLIP}"
    while True:
        client, _ = listener.accept()
        client.recv(65536)
        with socket.create_connection((moto.hostname, moto.port)) as upstream:
            upstream.sendall(f"GET {path} HTTP/1.1\r\nHost: {moto.netloc}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += upstream.recv(65536)
            _, _, body = head.partition(b"\r\n\r\n")
            client.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {CLIP_SIZE}\r\n\r\n".encode())
            client.sendall(body)
            sent = len(body)
            while sent < CLIP_SIZE:
                buffer = bytearray(MiB)
                n = upstream.recv_into(buffer)
                if not n:
                    break
                client.sendall(memoryview(buffer)[:n])
                sent += n
        client.close()


def main(pairs: int) -> int:
    with tempfile.TemporaryDirectory(prefix="footgw-s3floor-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        world = fixtures.make_world(root)
        data_dir = fixtures.make_data_dir(world, root / "gateway-s3", grants=False)
        started: list[servers.Server] = []
        relay = None
        try:
            moto = servers.start_moto(logs)
            started.append(moto)
            run.upload_to_moto(world, moto)
            env = world.env(
                data_dir,
                FOOTGW_STORAGE=f"s3://{run.BUCKET}",
                FOOTGW_S3_ENDPOINT_URL=moto.url,
                **run.S3_ENV,
            )
            gateway = servers.start_gateway("gateway-s3", env, logs)
            started.append(gateway)
            listener = socket.create_server((servers.HOST, 0))
            relay = multiprocessing.get_context("fork").Process(
                target=bare_relay, args=(moto.url, listener), daemon=True
            )
            relay.start()
            relay_url = f"http://{servers.HOST}:{listener.getsockname()[1]}/clip"
            return _measure(world, gateway, moto, relay_url, pairs)
        finally:
            if relay is not None:
                relay.terminate()
            for server in reversed(started):
                server.stop()


def _measure(
    world: fixtures.World, gateway: servers.Server, moto: servers.Server, relay: str, pairs: int
) -> int:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(**run._s3_session()).client(
        "s3", endpoint_url=moto.url, config=Config(s3={"addressing_style": "path"})
    )

    def boto() -> float:
        began = time.perf_counter()
        body = client.get_object(Bucket=run.BUCKET, Key=f"{CUSTOMER}/{CAMERA}/{CLIP}")["Body"]
        while body.read(MiB):
            pass
        return time.perf_counter() - began

    def fetch(url: str, headers: dict[str, str] | None = None) -> float:
        got = httpclient.get(url, headers)
        if got.body_bytes != CLIP_SIZE:
            raise RuntimeError(f"{url}: {got}")
        return got.seconds

    runs = {
        "gateway": lambda: fetch(
            gateway.url + "/v1/footage" + run.clip_path(), world.owner_headers()
        ),
        "bare relay": lambda: fetch(relay),
        "boto3 direct": boto,
    }
    for measure in runs.values():
        measure()  # warm-up, unmeasured
    began_load = run.load_average()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(pairs):
        for name in list(runs) if i % 2 == 0 else list(reversed(runs)):
            seconds[name].append(runs[name]())
    ratios = {
        name: round(
            statistics.median(b / s for b, s in zip(seconds["boto3 direct"], own, strict=True)), 3
        )
        for name, own in seconds.items()
        if name != "boto3 direct"
    }
    mib_s = {name: round(CLIP_SIZE / MiB / statistics.median(s)) for name, s in seconds.items()}
    out = {
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": results.git_state(BENCH.parent)[0],
        "load_average_start": began_load,
        "load_average_end": run.load_average(),
        "pairs": pairs,
        "MiB_per_s_median": mib_s,
        "ratio_to_boto3_median_of_pairs": ratios,
        "seconds": seconds,
    }
    path = BENCH / "runs" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-s3-floor.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    say(f"MiB/s {mib_s}; ratio to boto3 {ratios}; load {began_load} → {out['load_average_end']}")
    say(f"wrote {path.relative_to(BENCH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 15))
