"""The Redis bus between two in-process replicas: a broadcast alone carries a policy change.

Two apps, each with its own engine and services, on two uvicorn servers in this process (the
subprocess tests are in test_cluster.py). Here one replica stops polling its files, so only
the other's announcement on Redis can make it reload; and its subscription survives Redis
dropping the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from gateway.cluster import Cluster as ClusterNode
from gateway.cluster.policy_watch import PolicyWatcher
from tests.support.cluster import (
    copy_policies,
    fresh_schema,
    require_postgres,
    require_redis,
    write_atomically,
)
from tests.support.server import GatewayEnv, Live, make_env, start_live, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LEGAL_VIEW = "p, legal, legal_request, view, *, allow, justified"


@dataclass
class Pair:
    env: GatewayEnv
    a: Live
    b: Live
    policy_dir: Path
    redis_url: str


def node(live: Live) -> ClusterNode:
    return live.services.cluster


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base, redis_url = require_postgres(), require_redis()
    root = tmp_path_factory.mktemp("bus")
    with fresh_schema(base) as database_url:
        policy_dir = copy_policies(root / "policies")
        env = make_env(
            root,
            {
                "FOOTGW_DATABASE_URL": database_url,
                "FOOTGW_REDIS_URL": redis_url,
                "FOOTGW_POLICY_DIR": str(policy_dir),
            },
        )
        a, b = start_live(env), start_live(env)
        try:
            yield Pair(env, a, b, policy_dir, redis_url)
        finally:
            for live in (a, b):
                live.client.close()
                live.server.stop()


def legal_may_view(live: Live) -> bool:
    return node(live).watcher.policy.rule_for("legal", "legal_request", "view", "indoor").allowed


@contextmanager
def not_polling(live: Live) -> Iterator[PolicyWatcher]:
    """The replica's poll task stopped, no turn of it in flight: only a broadcast reloads it.

    Stopped on its own loop and awaited, so a poll turn that had already read the files
    cannot load the edit the test makes next.
    """
    watcher = node(live).watcher
    live.server.run_on_loop(watcher.close())
    try:
        yield watcher
    finally:
        live.server.run_on_loop(_start(watcher))


async def _start(watcher: PolicyWatcher) -> None:
    watcher.start()


def edit_policy(pair: Pair, old: str, new: str) -> None:
    path = pair.policy_dir / "policy.csv"
    text = path.read_text()
    assert old in text
    write_atomically(path, text.replace(old, new))


def test_both_replicas_listen_on_their_clusters_channel(pair: Pair) -> None:
    a, b = node(pair.a), node(pair.b)
    assert a.bus is not None and b.bus is not None
    assert a.bus.channel == b.bus.channel  # the database's cluster id names it
    assert a.node != b.node
    admin = redis.Redis.from_url(pair.redis_url)
    names = {c["name"] for c in admin.client_list()}
    admin.close()
    assert {f"footgw-bus:{a.node}", f"footgw-bus:{b.node}"} <= names


def test_a_replica_that_does_not_poll_reloads_on_the_broadcast(pair: Pair) -> None:
    with not_polling(pair.b) as listener:
        reloads = listener.reloads
        assert legal_may_view(pair.b)
        edit_policy(pair, LEGAL_VIEW, "# legal withdrawn")
        wait_for(lambda: not legal_may_view(pair.b))
        assert not legal_may_view(pair.a)  # the replica that found the edit, and announced it
        assert listener.reloads == reloads + 1
        assert broadcast_reloads(pair.b) == 1
        edit_policy(pair, "# legal withdrawn", LEGAL_VIEW)
        # Restored through the same path: the polling replica announces, B reloads.
        wait_for(lambda: legal_may_view(pair.b))
        assert broadcast_reloads(pair.b) == 2


def test_the_subscription_comes_back_after_redis_drops_it(pair: Pair) -> None:
    b = node(pair.b)
    admin = redis.Redis.from_url(pair.redis_url)
    [before] = _bus_clients(admin, b.node)
    assert admin.client_kill_filter(_id=before["id"]) == 1
    # The bus notices, reconnects after a short backoff and subscribes again; then it reads
    # the files once, in case an announcement was lost meanwhile.
    wait_for(lambda: [c["id"] for c in _bus_clients(admin, b.node)] not in ([], [before["id"]]))
    admin.close()
    with not_polling(pair.b):
        edit_policy(pair, LEGAL_VIEW, "# legal withdrawn again")
        wait_for(lambda: not legal_may_view(pair.a) and not legal_may_view(pair.b))
        heard = broadcast_reloads(pair.b)
        edit_policy(pair, "# legal withdrawn again", LEGAL_VIEW)
        # Only A polls: B can only have this from A's announcement, on the new subscription.
        wait_for(lambda: legal_may_view(pair.b))
        assert broadcast_reloads(pair.b) == heard + 1


def broadcast_reloads(live: Live) -> float:
    registry = live.services.metrics.registry
    labels = {"result": "ok", "trigger": "broadcast"}
    return registry.get_sample_value("footgw_policy_reloads_total", labels) or 0.0


def _bus_clients(admin: redis.Redis, name: str) -> list[dict]:
    """The subscribed connections of one node's bus."""
    return [
        c
        for c in admin.client_list()
        if c["name"] == f"footgw-bus:{name}" and int(c.get("sub", 0)) > 0
    ]
