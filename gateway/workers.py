"""`serve` on every core: one listening socket, N forked uvicorn workers, each replaced if it dies.

The supervisor binds the socket once, before any worker exists, and forks the workers; each
inherits the listening socket and accepts on it (the kernel hands every new connection to one
of the processes waiting in accept). No worker binds anything, so there is no window in which
a port is held by a stale process, and `FOOTGW_PORT=0` means one port for all of them.

Fork, not spawn: a worker is this process's image after preflight and the schema check, with
no thread and no open database connection, so nothing is inherited that two processes could
share by accident. Each worker builds its own services in uvicorn's lifespan, as a single
process does (docs/benchmarks.md, "Every core", says why this and not a writer process).

What the workers share lives outside them: the audit chain in the database (every append reads
the head under the write lock: BEGIN IMMEDIATE on SQLite, the advisory lock on PostgreSQL),
suspensions and grants in the database (read on every request), detection counters in Redis or
in a SQLite file beside the database (gateway/detection/sqlite_counters.py), and the policy
files, which every worker polls.

The supervisor itself runs no event loop and serves nothing. SIGTERM or SIGINT: it passes
SIGTERM to every worker (each drains its streams, flushes, and exits) and returns once all
have. A worker that exits otherwise is replaced at once; one that fails its startup (exit 3:
the configuration or the database is wrong for it too) stops the whole server, exit 3.
Every worker asks the kernel to kill it when the supervisor dies (PR_SET_PDEATHSIG), so a
SIGKILLed supervisor leaves no orphan serving on its socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog

log = structlog.get_logger("gateway.workers")

STARTUP_FAILURE = 3  # uvicorn's own exit code when the lifespan startup fails
PR_SET_PDEATHSIG = 1
# A worker that keeps dying within moments of its start is a broken deployment, not bad luck:
# past this many replacements in RESTART_WINDOW seconds the supervisor stops, exit 1.
MAX_RESTARTS = 20
RESTART_WINDOW = 60.0

RunWorker = Callable[[socket.socket], int]
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cgroup: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity mask (a cpuset), capped by its cgroup's CPU
    quota (a Kubernetes CPU limit is a quota, not a cpuset: `limits.cpu: 2` on a 32-core node
    is 2 here, rounded up, not 32)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)


def _cpu_quota(cpu_max: Path) -> int | None:
    """cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD" when unlimited), in whole CPUs."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no such file, "max", or anything unexpected: no cap
        return None


class Supervisor:
    """Fork `count` workers that each run `run_worker(sock)`; keep `count` alive until stopped."""

    def __init__(self, count: int, sock: socket.socket, run_worker: RunWorker) -> None:
        self.count = count
        self.sock = sock
        self.run_worker = run_worker
        self.workers: dict[int, float] = {}  # pid -> when it was started (monotonic)
        self.stopping = False
        self.exit_code = 0
        self._restarts: list[float] = []

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit 0) or a worker that cannot start (exit 3)."""
        self._install_signals()
        for _ in range(self.count):
            self._fork()
        log.info("workers_started", workers=self.count, pids=sorted(self.workers))
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if self.workers.pop(pid, None) is None:
                continue
            self._reaped(pid, status)
        self.sock.close()
        log.info("workers_stopped", exit_code=self.exit_code)
        return self.exit_code

    def _reaped(self, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
        if self.stopping:
            return
        if code == STARTUP_FAILURE:
            log.error("worker_startup_failed", pid=pid, exit_code=code)
            self.stop(STARTUP_FAILURE)
            return
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            log.error("workers_restarting_too_often", restarts=len(self._restarts))
            self.stop(1)
            return
        log.warning("worker_died", pid=pid, exit_code=code)
        replacement = self._fork()
        log.info("worker_replaced", pid=pid, replacement=replacement)

    def stop(self, exit_code: int = 0) -> None:
        """Ask every worker to finish (SIGTERM); run() returns once they have."""
        if not self.stopping:
            self.stopping, self.exit_code = True, exit_code
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("workers_stopping", signal=signal.Signals(signum).name)
            self.stop(self.exit_code)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)

    def _fork(self) -> int:
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.workers[pid] = time.monotonic()
            return pid
        code = 1
        try:  # the worker: never returns into the supervisor's code
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)  # uvicorn installs its own
            _die_with(parent)
            code = self.run_worker(self.sock)
        except SystemExit as exc:  # uvicorn exits 3 when the lifespan startup fails
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            log.error("worker_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)


def _die_with(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; else a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor died before the request above took effect
        os._exit(1)
