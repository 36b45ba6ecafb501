"""A real gateway on a real socket: uvicorn on an ephemeral loopback port, driven with httpx.

`gateway_env` builds a data dir, a signing key pair whose public half the gateway trusts, and
a migrated SQLite database; `live` starts the gateway on it. Tests seed footage and zones
through the same storage and stores the gateway uses, never by mocking them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.types import ASGIApp

from gateway import migrations
from gateway.app import create_app
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.devkeys import DEV_KID
from gateway.server import Limits, server_config
from gateway.services import Services
from gateway.settings import Settings, load_settings
from gateway.storage import open_seeder
from gateway.types import CameraRef, ClipRef, Zone, clip_recorded_at

STARTUP_TIMEOUT = 15.0
T = TypeVar("T")


class LiveServer:
    """uvicorn serving an app in a thread; `url` is known once it listens."""

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        # The production configuration (gateway/server.py): its protocol, with the head limits
        # and zero-copy sends, and X-Forwarded-For believed only through FOOTGW_TRUSTED_PROXIES
        # (uvicorn would otherwise believe it from 127.0.0.1, where every test client is).
        self.config = server_config(app, "127.0.0.1", 0, limits)
        self.config.lifespan = "on"
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        # Wait for uvicorn's own "started" flag (set once the socket listens), bounded.
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STARTUP_TIMEOUT)

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the server's event loop, where the app's services live, and wait."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=STARTUP_TIMEOUT)


@dataclass
class GatewayEnv:
    """Everything a test needs to run and feed a gateway."""

    root: Path
    private_key: Ed25519PrivateKey
    env: dict[str, str]
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self, **overrides: str) -> Settings:
        self.env.update(overrides)
        self.settings = load_settings(self.env)
        return self.settings

    def token(
        self, sub: str, *roles: str, customer_id: str | None = None, ttl: int = 600, **claims: Any
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"sub": sub, "roles": list(roles), "iat": now, "exp": now + ttl}
        if customer_id:
            body["customer_id"] = customer_id
        body.update(claims)
        # A dev-mode gateway (make_env's `dev_mode`) knows the key only by dev mode's kid.
        headers = {"kid": DEV_KID} if self.settings.dev_mode else None
        return jwt.encode(body, self.private_key, algorithm="EdDSA", headers=headers)

    def auth(
        self, sub: str, *roles: str, customer_id: str | None = None, **headers: str
    ) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token(sub, *roles, customer_id=customer_id)}",
            **headers,
        }

    def put_clip(self, customer_id: str, camera_id: str, clip_id: str, data: bytes) -> ClipRef:
        recorded_at = clip_recorded_at(clip_id) or datetime.now(UTC)
        clip = ClipRef(customer_id, camera_id, clip_id, recorded_at)

        async def put() -> None:
            storage = open_seeder(self.settings)
            try:
                await storage.put(clip, data)
            finally:
                await storage.close()

        asyncio.run(put())
        return clip

    def set_zone(self, customer_id: str, camera_id: str, zone: Zone) -> None:
        engine = create_db_engine(self.settings.database_url)
        try:
            CameraStore(engine).set(
                CameraRef(customer_id, camera_id), zone, "", "test", datetime.now(UTC)
            )
        finally:
            engine.dispose()


def make_env(
    root: Path, extra: Mapping[str, str] | None = None, *, dev_mode: bool = False
) -> GatewayEnv:
    """A data dir with a trusted Ed25519 key and a migrated SQLite database.

    With `dev_mode`, the gateway runs as `make run` does (FOOTGW_DEV_MODE=1) and the key is
    dev mode's own key file instead of FOOTGW_JWT_PUBLIC_KEY_FILE.
    """
    key = Ed25519PrivateKey.generate()
    if dev_mode:
        dev_key = root / "dev-jwt-key.pem"
        dev_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        dev_key.chmod(0o600)
        extra = {"FOOTGW_JWT_PUBLIC_KEY_FILE": "", "FOOTGW_DEV_MODE": "1", **(extra or {})}
    public = root / "jwt-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    env = {
        "FOOTGW_DATA_DIR": str(root),
        "FOOTGW_JWT_PUBLIC_KEY_FILE": str(public),
        "FOOTGW_LOG_FORMAT": "json",
        # Every test client is 127.0.0.1: attack tests send thousands of refused tokens from it.
        # The limit's own tests (tests/test_ratelimit.py) set theirs.
        "FOOTGW_UNAUTHENTICATED_PER_MINUTE": "1000000",
        **(extra or {}),
    }
    gateway_env = GatewayEnv(root, key, env)
    engine = create_db_engine(gateway_env.settings.database_url)
    migrations.migrate(engine)
    engine.dispose()
    return gateway_env


@pytest.fixture
def gateway_env(tmp_path: Path) -> GatewayEnv:
    return make_env(tmp_path)


@dataclass
class Live:
    env: GatewayEnv
    server: LiveServer
    client: httpx.Client
    state: dict[str, Any] = field(default_factory=dict)  # what the app's lifespan yielded

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def services(self) -> Services:
        """The Services the running gateway's lifespan built (requests see the same record)."""
        services: Services = self.state["services"]
        return services

    def close(self) -> None:
        """Close the client and stop the server."""
        self.client.close()
        self.server.stop()

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start_live(env: GatewayEnv, limits: Limits | None = None) -> Live:
    """The gateway on a real socket; `limits` replaces the server's own (gateway/server.py)."""
    app = create_app(env.settings)
    state = hold_lifespan_state(app)
    server = LiveServer(app, limits).start()
    return Live(env, server, httpx.Client(base_url=server.url, timeout=30.0), state)


def hold_lifespan_state(app: Starlette) -> dict[str, Any]:
    """A dict that holds what app's lifespan yields once it has started (its state): tests
    reach the running gateway's Services there, as the app is not where the lifespan puts them."""
    held: dict[str, Any] = {}
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running: Starlette) -> AsyncIterator[Any]:
        async with inner(running) as state:
            held.update(state or {})
            yield state

    app.router.lifespan_context = lifespan
    return held


@pytest.fixture
def live(gateway_env: GatewayEnv) -> Iterator[Live]:
    with start_live(gateway_env) as running:
        yield running


def free_port() -> int:
    """A loopback port nothing listens on right now, for a server that binds it a moment later
    (one that cannot be handed a listening socket: a subprocess, nginx)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `condition()` until it returns something truthy, bounded by `timeout`.

    For facts the server records after the response is sent (access.complete is written
    when the stream ends, which the client can observe a moment before the server does).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def raw_get(url: str, path: bytes, token: str) -> tuple[int, dict[str, str], bytes]:
    """Send the request line exactly as given (clients would normalise it)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"GET " + path + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body
