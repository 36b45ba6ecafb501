"""Several replicas as one system (docs/deploy.md): what each kind of state needs to stay shared.

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

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from gateway.authz import PolicyEngine
from gateway.cluster.bus import RedisBus
from gateway.cluster.identity import channel_for, new_node_id, read_cluster_id
from gateway.cluster.policy_watch import TOPIC as POLICY_TOPIC
from gateway.cluster.policy_watch import PolicyWatcher, Record
from gateway.settings import Settings

__all__ = ["Cluster", "PolicyWatcher", "RedisBus"]

log = structlog.get_logger("gateway.cluster")

SUBSCRIBE_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Cluster:
    """This replica's part in the cluster: its name, its policy watcher, its bus (if any)."""

    node: str
    watcher: PolicyWatcher
    bus: RedisBus | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: Engine,
        policy: PolicyEngine,
        *,
        record: Record,
        registry: CollectorRegistry | None,
    ) -> Cluster:
        """The watcher over settings.policy_dir, and a Redis bus when FOOTGW_REDIS_URL is set."""
        node = new_node_id()
        bus: RedisBus | None = None
        if settings.redis_url:
            bus = RedisBus(settings.redis_url, channel_for(read_cluster_id(engine)), node)
        watcher = PolicyWatcher(
            policy,
            settings.policy_dir,
            node=node,
            record=record,
            publish=bus.publish if bus else None,
            registry=registry,
        )
        return cls(node, watcher, bus)

    async def start(self) -> None:
        """Subscribe to the bus (waiting a moment for it), then start polling the files."""
        if self.bus is not None:
            self.bus.on(POLICY_TOPIC, self.watcher.on_announcement)
            self.bus.on_reconnect(self.watcher.on_reconnect)
            self.bus.start()
            await _wait_subscribed(self.bus)
        self.watcher.start()

    async def close(self) -> None:
        await self.watcher.close()
        if self.bus is not None:
            await self.bus.close()


async def _wait_subscribed(bus: RedisBus) -> None:
    # Serve without Redis rather than not at all: the files are still polled, and the bus keeps
    # retrying in the background (and looks at the files again once it is back).
    with suppress(TimeoutError):
        await asyncio.wait_for(bus.connected.wait(), SUBSCRIBE_WAIT_SECONDS)
        return
    log.warning("cluster_bus_not_connected", channel=bus.channel, waited=SUBSCRIBE_WAIT_SECONDS)
