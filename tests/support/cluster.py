"""Several gateways on the machine's PostgreSQL and Redis: fresh schemas, real subprocesses.

FOOTGW_TEST_DATABASE_URL and FOOTGW_TEST_REDIS_URL name the servers (CI sets both; the tests
that need them skip, saying why, when they are unset). Every test module gets its own
PostgreSQL schema (search_path through the URL's `options`), so a run never sees old data;
Redis channels are namespaced by the cluster id that the fresh schema's migration makes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from gateway.db import create_db_engine
from tests.support.server import free_port
from tests.support.skips import skip_unconfigured

DATABASE_ENV = "FOOTGW_TEST_DATABASE_URL"
REDIS_ENV = "FOOTGW_TEST_REDIS_URL"
START_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[2]


def require_postgres() -> str:
    """The test PostgreSQL URL, or skip the test with the reason."""
    url = os.environ.get(DATABASE_ENV, "").strip()
    if not url:
        skip_unconfigured(
            f"{DATABASE_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    return url


def require_redis() -> str:
    """The test Redis URL, or skip the test with the reason."""
    url = os.environ.get(REDIS_ENV, "").strip()
    if not url:
        skip_unconfigured(f"{REDIS_ENV} is not set (e.g. redis://127.0.0.1:6379/0)")
    return url


def with_search_path(url: str, schema: str) -> str:
    """The URL with libpq `options` that put `schema` first on the search_path."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


# The parameters of a fixture that runs its tests on SQLite and, when configured, PostgreSQL.
EITHER_DATABASE = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def database_settings(kind: str) -> Iterator[dict[str, str]]:
    """The settings that put a gateway on `kind` ("sqlite": the embedded default; "postgresql":
    a fresh schema of the test server, dropped after)."""
    if kind == "sqlite":
        yield {}
        return
    with fresh_schema(require_postgres()) as url:
        yield {"FOOTGW_DATABASE_URL": url}


@contextlib.contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A new, empty schema for one test module; yields a URL that uses it; dropped after."""
    schema = f"footgw_t_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield with_search_path(base_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def copy_policies(target: Path) -> Path:
    """A private copy of the repo's policies/ that a test may edit."""
    shutil.copytree(REPO / "policies", target)
    return target


def write_atomically(path: Path, text: str) -> None:
    """Replace a file in one step, as editors that rename and the kubelet's ConfigMap swap do
    (an in-place write can be read half done; the watcher then waits or refuses it)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temporary.write_text(text)
    os.replace(temporary, path)


def console_script() -> str:
    """The installed `footage-gateway` next to this interpreter (what the container runs)."""
    script = Path(sys.executable).parent / "footage-gateway"
    return str(script) if script.exists() else "footage-gateway"


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any FOOTGW_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTGW_")}
    env.update(extra)
    return env


class GatewayProcess:
    """`footage-gateway serve` (or another command) as a real subprocess on a free port."""

    def __init__(self, env: Mapping[str, str], log_path: Path, argv: list[str] | None = None):
        self.port = free_port()
        # One process per replica, as deploy/k8s runs them (FOOTGW_WORKERS=1); a test may say
        # otherwise (tests/test_workers.py runs several workers).
        self.env = clean_environ(
            {
                "FOOTGW_WORKERS": "1",
                **env,
                "FOOTGW_HOST": "127.0.0.1",
                "FOOTGW_PORT": str(self.port),
            }
        )
        self.argv = argv or [console_script(), "serve"]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        return self.spawn().wait_ready()

    def spawn(self) -> GatewayProcess:
        """Start the process and return at once (start several, then wait_ready each)."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        return self

    def wait_ready(self) -> GatewayProcess:
        """Wait (bounded) until /healthz answers; RuntimeError with the log tail otherwise."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the gateway did not answer /healthz: {self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Poll predicate() until true; returns the seconds it took, fails the test on timeout."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
