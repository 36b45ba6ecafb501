"""`footage-gateway storage check`: every stored object that is not a servable clip, and why.

The request path refuses a misnamed object as absent (docs/security.md §3), and the retention
sweep passes it by, so a clip stored under a wrong name is neither served nor ever purged. This
walks the whole store (Inventory) and names each such object; nothing is skipped quietly.
Exit 0 when every object is a clip, 1 when anything is not, 2 when the store cannot be read.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TextIO

from gateway.errors import StorageUnavailable
from gateway.settings import Settings
from gateway.storage import open_inventory
from gateway.storage.base import Inventory
from gateway.storage.paths import problem_with


async def check_storage(inventory: Inventory, out: TextIO) -> int:
    """One line per object that is not a clip, then a summary; 0 when clean, 1 otherwise."""
    checked = problems = 0
    async with aclosing(inventory.walk()) as objects:  # type: ignore[type-var]
        async for found in objects:
            checked += 1
            reason = problem_with(found)
            if reason is not None:
                problems += 1
                print(f"{shown(found.path)}: {reason}", file=out)
    print(f"{checked} object(s) checked, {problems} problem(s)", file=out)
    return 1 if problems else 0


async def run(settings: Settings, out: TextIO, err: TextIO) -> int:
    """check_storage over the configured store; 2 with one line if it cannot be read."""
    try:
        inventory = open_inventory(settings)
        try:
            return await check_storage(inventory, out)
        finally:
            await inventory.close()
    except StorageUnavailable as exc:
        print(f"footage-gateway: storage unavailable: {exc}", file=err)
        return 2


def shown(path: str) -> str:
    """The path as one printable line: undecodable bytes and control characters escaped."""
    # A file name can hold any byte but "/" and NUL: a newline in one must not forge a line.
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text if text.isprintable() else ascii(text)
