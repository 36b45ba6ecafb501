"""Background tasks start in a context with no request bound to it.

asyncio copies the current context into every task it creates, so a task first spawned while a
request is being served (the audit writer, an alert delivery, a checkpoint timer) would carry
that request's structlog `request_id` into every line it logs afterwards, long after the
request finished. Every long-lived or fire-and-forget task is spawned here instead, from a
copy of the context with structlog's bound variables cleared (docs/deploy.md, "Logs").
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")


def detached_context() -> contextvars.Context:
    """A copy of the current context without the request's logging variables."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.clear_contextvars)
    return context


def spawn(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Start `coro` as a task of the running loop, detached from the caller's request."""
    loop = asyncio.get_running_loop()
    return loop.create_task(coro, name=name, context=detached_context())
