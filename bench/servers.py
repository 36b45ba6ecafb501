"""Start and stop every server of one bench run: the gateway, the bare apps, nginx, moto.

Each is a subprocess on a loopback port; each is stopped by its own pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, timeout: float = 30.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"{self.name} exited at start-up:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + path, timeout=1.0)  # any answer means it listens
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    """An ephemeral port for servers that cannot take a listening socket (nginx, moto, serve)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _spawn(
    name: str,
    argv: list[str],
    logs: Path,
    port: int,
    *,
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> Server:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    return Server(name, proc, port, log)


def start_gateway(name: str, settings_env: dict[str, str], logs: Path) -> Server:
    """`footage-gateway serve`, the production entry point, on a free loopback port."""
    port = free_port()
    env = {**os.environ, **settings_env, "FOOTGW_HOST": HOST, "FOOTGW_PORT": str(port)}
    argv = [str(BIN / "footage-gateway"), "serve"]
    return _spawn(name, argv, logs, port, env=env).wait_ready("/healthz")


def start_baseline(kind: str, root: Path, clip: Path, logs: Path, workers: int = 1) -> Server:
    """A bare Starlette app (bench/baselines.py) on a socket bound here, handed over as --fd."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    argv = [
        sys.executable,
        str(BENCH / "baselines.py"),
        kind,
        "--fd",
        str(sock.fileno()),
        "--root",
        str(root),
        "--clip",
        str(clip),
        "--workers",
        str(workers),
    ]
    try:
        server = _spawn(kind, argv, logs, port, pass_fds=(sock.fileno(),))
    finally:
        sock.close()
    return server.wait_ready("/missing")


NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    types {{ video/mp4 mp4; }}
{body}
}}
"""

# nginx alone, serving the footage tree with sendfile: the baseline.
SENDFILE_SERVER = """\
    server {{
        listen {host}:{port};
        root {root};
    }}"""

# nginx in front of a FOOTGW_DELIVERY=accel gateway, as deploy/nginx-accel.conf is: the gateway
# decides and commits, then nginx sends the file from its `internal;` location.
ACCEL_SERVER = """\
    upstream footage_gateway {{
        server {host}:{gateway_port};
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://footage_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering off;
        }}
        location {prefix_uri} {{
            internal;
            alias {root}/;
            max_ranges 1;
            if_modified_since off;
            etag off;
            add_header ETag $upstream_http_etag always;
            add_header X-Audit-Event-ID $upstream_http_x_audit_event_id always;
            add_header X-Request-ID $upstream_http_x_request_id always;
        }}
    }}"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def start_nginx(root: Path, logs: Path) -> Server | None:
    """nginx with sendfile, one worker (the gateway is one process too); None if not installed."""
    return _start_nginx("nginx", SENDFILE_SERVER, logs, "/missing", root=root)


def start_nginx_accel(gateway: Server, root: Path, prefix_uri: str, logs: Path) -> Server | None:
    """nginx in front of an accel-mode gateway (ACCEL_SERVER); None if not installed."""
    return _start_nginx(
        "nginx-accel",
        ACCEL_SERVER,
        logs,
        "/healthz",
        root=root,
        gateway_port=gateway.port,
        prefix_uri=prefix_uri,
    )


def _start_nginx(
    name: str, server_block: str, logs: Path, ready_path: str, **values: object
) -> Server | None:
    """One nginx with one worker: NGINX_CONF around server_block, filled with values."""
    binary = nginx_binary()
    if binary is None:
        return None
    prefix = logs / name
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    body = server_block.format(host=HOST, port=port, **values)
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the bench's 0700 dirs
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, body=body))
    argv = [binary, "-p", str(prefix), "-c", str(conf)]
    return _spawn(name, argv, logs, port).wait_ready(ready_path)


def start_moto(logs: Path) -> Server:
    """moto's standalone S3 server (werkzeug, threaded) as its own process."""
    port = free_port()
    moto = shutil.which("moto_server", path=str(BIN)) or "moto_server"
    argv = [moto, "-H", HOST, "-p", str(port)]
    return _spawn("moto", argv, logs, port).wait_ready("/moto-api/")
