"""Several replicas as one system (issue 6): what each kind of state needs to stay shared.

- The audit chain, grants, cameras, flags and suspensions live in the database. A principal's
  status is read from it on every request, so a suspension made through any replica refuses
  the very next request on every other one: there is no cache to invalidate.
- Detection counters live in Redis (gateway/detection/redis_counters.py).
- The policy lives in files on each replica. PolicyWatcher reloads them when they change, and
  with FOOTGW_REDIS_URL set a RedisBus carries "the policy changed" to every other replica,
  which reloads within a second (a Casbin watcher on Redis pub/sub).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread
import structlog

from gateway.cluster.bus import RedisBus
from gateway.cluster.identity import channel_for, new_node_id, read_cluster_id
from gateway.cluster.policy_watch import TOPIC as POLICY_TOPIC
from gateway.cluster.policy_watch import PolicyWatcher

if TYPE_CHECKING:
    from gateway.app import Services

__all__ = ["Cluster", "PolicyWatcher", "RedisBus", "start_cluster"]

log = structlog.get_logger("gateway.cluster")

SUBSCRIBE_WAIT_SECONDS = 2.0


@dataclass
class Cluster:
    """This replica's part in the cluster: its name, its policy watcher, its bus (if any)."""

    node: str
    watcher: PolicyWatcher
    bus: RedisBus | None = None

    async def close(self) -> None:
        await self.watcher.close()
        if self.bus is not None:
            await self.bus.close()


async def start_cluster(services: Services) -> Cluster:
    """Start the policy watcher, and the Redis bus when FOOTGW_REDIS_URL is set."""
    settings = services.settings
    node = new_node_id()
    bus: RedisBus | None = None
    if settings.redis_url:
        cluster_id = await anyio.to_thread.run_sync(read_cluster_id, services.engine)
        bus = RedisBus(settings.redis_url, channel_for(cluster_id), node)
    watcher = PolicyWatcher(
        services.policy,
        settings.policy_dir,
        node=node,
        record=services.audit.append,
        publish=bus.publish if bus else None,
        registry=services.metrics.registry,
    )
    if bus is not None:
        bus.on(POLICY_TOPIC, watcher.on_announcement)
        bus.on_reconnect(watcher.on_reconnect)
        bus.start()
        await _wait_subscribed(bus)
    watcher.start()
    return Cluster(node, watcher, bus)


async def _wait_subscribed(bus: RedisBus) -> None:
    # Serve without Redis rather than not at all: the files are still polled, and the bus keeps
    # retrying in the background (and looks at the files again once it is back).
    with suppress(TimeoutError):
        await asyncio.wait_for(bus.connected.wait(), SUBSCRIBE_WAIT_SECONDS)
        return
    log.warning("cluster_bus_not_connected", channel=bus.channel, waited=SUBSCRIBE_WAIT_SECONDS)
