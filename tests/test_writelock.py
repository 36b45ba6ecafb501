"""The machine-wide SQLite writer's lock (gateway/writelock.py): one holder across threads and
processes, handed over at release, re-entrant in a thread, and a timeout that fails closed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.writelock import WriteLock, WriteLockTimeout, for_database

HOLD = """
import sys, time
from pathlib import Path
from gateway.writelock import WriteLock
lock = WriteLock(Path(sys.argv[1]))
with lock.held():
    print("held", flush=True)
    sys.stdin.readline()  # until the test lets go
"""


def test_another_process_holding_it_keeps_this_one_out_until_it_lets_go(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(WriteLockTimeout), WriteLock(database, timeout=0.2).held():
            pass
        holder.stdin.write("go\n")
        holder.stdin.flush()
        with WriteLock(database, timeout=10).held():  # handed over once it let go
            pass
        assert holder.wait(10) == 0


def test_a_forked_child_does_not_share_its_parents_hold(tmp_path: Path) -> None:
    """flock belongs to an open file description, which fork shares: the child must open its
    own, or it would 'hold' the lock its parent holds."""
    lock = WriteLock(tmp_path / "gateway.db", timeout=0.2)
    with lock.held():
        pid = os.fork()
        if pid == 0:  # the child: must time out, since the parent holds the lock
            try:
                with lock.held():
                    os._exit(1)
            except WriteLockTimeout:
                os._exit(0)
            os._exit(2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_threads_take_turns_and_a_thread_may_enter_again(tmp_path: Path) -> None:
    lock = for_database(tmp_path / "gateway.db")
    assert for_database(tmp_path / "gateway.db") is lock  # one per file in a process
    inside = 0
    most = 0
    guard = threading.Lock()

    def write() -> None:
        nonlocal inside, most
        for _ in range(200):
            with lock.held(), lock.held():  # the second is the same thread entering again
                with guard:
                    inside += 1
                    most = max(most, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1
    with WriteLock(tmp_path / "gateway.db", timeout=0.2).held():  # and it was let go
        pass
