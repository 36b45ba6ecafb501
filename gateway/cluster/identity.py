"""Who is who in a deployment: the cluster (every replica on one database) and this node.

The cluster id is made once by migration 0002 and read from the database, so every replica that
shares the database shares the id without configuration, and two deployments that share one
Redis never hear each other's broadcasts.
"""

from __future__ import annotations

import os
import socket
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.db import cluster_info

CHANNEL_PREFIX = "footgw"


def read_cluster_id(engine: Engine) -> str:
    """This deployment's id (the database must be migrated: `serve` checks that first)."""
    with engine.connect() as conn:
        value = conn.execute(
            sa.select(cluster_info.c.value).where(cluster_info.c.name == "cluster_id")
        ).scalar()
    if not value:
        raise LookupError("cluster_info has no cluster_id: run `footage-gateway migrate`")
    return str(value)


def channel_for(cluster_id: str) -> str:
    """The one Redis pub/sub channel of a deployment."""
    return f"{CHANNEL_PREFIX}:{cluster_id}:cluster"


def new_node_id() -> str:
    """A name for this process that is unique in the cluster and readable in logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
