"""A small broadcast bus over Redis pub/sub: every replica hears what any replica announces.

Pub/sub is fire-and-forget: a replica that is disconnected misses messages. So nothing on this
bus is ever the only copy of a fact. It only says "look again" (reload the policy files); the
facts themselves live in files and in the database. After a reconnect the bus tells its
listeners, which look again in case they missed something.

Messages are JSON objects `{"topic", "node", ...}`; a node ignores its own. Anyone who can
publish on this Redis can make every replica re-read its own policy files, and nothing more.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from gateway.background import spawn

log = structlog.get_logger("gateway.cluster")

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[None]]
ReconnectHook = Callable[[], Awaitable[None]]

RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
_MAX_MESSAGE = 64 * 1024


class RedisBus:
    """Publish to and listen on one channel; `run()` keeps the subscription alive."""

    def __init__(self, url: str, channel: str, node: str) -> None:
        self.channel = channel
        self.node = node
        # Publishing is on the request path of whoever publishes: fail fast.
        self._publisher = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        # The subscriber waits for messages forever; health checks find a dead socket.
        # Named, so that CLIENT LIST on the Redis shows which replicas are listening.
        self._subscriber = redis.Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            socket_keepalive=True,
            health_check_interval=5,
            client_name=f"footgw-bus:{node}",
        )
        self._handlers: dict[str, Handler] = {}
        self._on_reconnect: list[ReconnectHook] = []
        self.connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def on(self, topic: str, handler: Handler) -> None:
        """Call handler with each message on topic that another node published."""
        self._handlers[topic] = handler

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Call hook after the subscription came back from an outage (messages may be lost)."""
        self._on_reconnect.append(hook)

    async def publish(self, topic: str, **fields: Any) -> bool:
        """Announce to every other node; False (and a warning) when Redis cannot be reached."""
        payload = json.dumps({**fields, "topic": topic, "node": self.node})
        try:
            await self._publisher.publish(self.channel, payload)
        except (RedisError, OSError) as exc:
            log.warning("cluster_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    def start(self) -> None:
        """Listen in a background task of the running loop."""
        self._task = spawn(self.run(), name="cluster-bus")

    async def run(self) -> None:
        """Subscribe and dispatch until close(); reconnect with backoff on any Redis error."""
        delay, outages = RECONNECT_MIN_SECONDS, 0
        while not self._closing:
            try:
                await self._listen(after_outage=outages > 0)
            except (RedisError, OSError) as exc:
                self.connected.clear()
                outages += 1
                log.warning("cluster_bus_disconnected", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            delay = RECONNECT_MIN_SECONDS

    async def _listen(self, *, after_outage: bool) -> None:
        async with self._subscriber.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            self.connected.set()
            log.info("cluster_bus_subscribed", channel=self.channel, node=self.node)
            if after_outage:
                await self._run_reconnect_hooks()
            while not self._closing:
                message = await pubsub.get_message(timeout=0.5)
                if message is not None:
                    await self._dispatch(message.get("data"))

    async def _dispatch(self, data: Any) -> None:
        message = _decode(data)
        if message is None or message.get("node") == self.node:
            return
        handler = self._handlers.get(str(message.get("topic")))
        if handler is None:
            return
        try:
            await handler(message)
        except Exception as exc:  # one bad message never stops the bus
            log.error("cluster_handler_failed", topic=message.get("topic"), error=str(exc))

    async def _run_reconnect_hooks(self) -> None:
        for hook in self._on_reconnect:
            try:
                await hook()
            except Exception as exc:
                log.error("cluster_reconnect_hook_failed", error=str(exc))

    async def close(self) -> None:
        """Stop listening (the loop notices within half a second) and close both clients."""
        self._closing = True
        if self._task is not None:
            # Asleep in a reconnect backoff, it is cancelled by wait_for after a second.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._task, timeout=1.0)
            self._task = None
        for client in (self._publisher, self._subscriber):
            with suppress(RedisError, OSError):
                await client.aclose()


def _decode(data: Any) -> Message | None:
    if not isinstance(data, bytes | str) or len(data) > _MAX_MESSAGE:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        log.warning("cluster_message_malformed")
        return None
    return message if isinstance(message, dict) else None
