"""structlog configuration: the one piece of global state, set once per process (STYLE §7, §14)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def configure_logging(
    fmt: Literal["json", "console", "auto"] = "auto", level: int = logging.INFO
) -> None:
    """JSON lines in production, a console renderer in a terminal; request ids merged first."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(shared, renderer)


def _route_standard_logging(
    shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor
) -> None:
    """Render the standard library's records (uvicorn's "Invalid HTTP request received.",
    botocore, SQLAlchemy) through the same processors: without this they reach stderr as raw
    text through logging's last-resort handler, and a JSON log is no longer one JSON record per
    line (a traceback there could even carry request text onto lines of its own)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # what the last-resort handler let through before
