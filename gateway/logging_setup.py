"""structlog configuration: the one piece of global state, set once per process (STYLE §7, §14)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from gateway.types import now_ts


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
        _utc_timestamp,
        structlog.processors.format_exc_info,
    ]
    processors = [*shared, renderer]
    global _json_chain  # the one piece of global state (the module docstring)
    _json_chain = None if use_console else tuple(processors)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # WriteLogger writes a line and its newline in one write (PrintLogger's print() makes
        # two): another thread's or process's line cannot land between them.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(shared, renderer)


# The processor list configure_logging("json") installed, while it is the one in use: its lines
# are known exactly (json_chain_active()), so a caller may build them without running it.
# Compared by content: capture_logs() swaps the processors inside the same list.
_json_chain: tuple[Processor, ...] | None = None


def json_chain_active() -> bool:
    """True when `log.info(event, **record)` runs exactly configure_logging("json")'s chain.

    That is: the chain is ours and unchanged (capture_logs() and tests swap it out), info is
    enabled, and no context variables are bound in this context, so the line is the record,
    `event`, `level` "info" and `timestamp`, as one JSON object (see gateway/audit/lines.py).
    """
    return (
        _json_chain is not None
        and tuple(structlog.get_config()["processors"]) == _json_chain
        and _info_enabled()
        and not structlog.contextvars.get_contextvars()
    )


def _utc_timestamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """What TimeStamper(fmt="iso", utc=True) adds, more cheaply (docs/benchmarks.md)."""
    event_dict["timestamp"] = now_ts()
    return event_dict


def _route_standard_logging(
    shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor
) -> None:
    """Render the standard library's records (uvicorn's "Invalid HTTP request received.",
    botocore, SQLAlchemy) through the same processors: without this they reach stderr as raw
    text through logging's last-resort handler, and a JSON log is no longer one JSON record per
    line (a traceback there could even carry request text onto lines of its own)."""
    handler = _SharedStreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # what the last-resort handler let through before


class _SharedStreamHandler(logging.Handler):
    """A handler that writes through structlog's WriteLogger for the same stream.

    Both then take the one lock structlog keeps per stream. With a StreamHandler of its own,
    the standard library's lock and structlog's are different locks, and a uvicorn warning
    could land between an audit line and its newline: two records on one line, neither JSON.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._out = structlog.WriteLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._out.msg(self.format(record))
        except Exception:
            self.handleError(record)


def log_each(event: str, records: Sequence[Mapping[str, Any]]) -> None:
    """Log one `event` line per record at info, as `log.info(event, **record)` would, in one write.

    The audit writer logs every committed batch this way: a bound logger's call and a write per
    line cost it more than sealing the events, in the thread the event loop shares its GIL with
    (docs/benchmarks.md). See render_lines() and write_lines() for the two halves.
    """
    lines = render_lines(event, records)
    if lines is None:
        for record in records:
            structlog.get_logger().info(event, **record)
    else:
        write_lines(lines)


def render_lines(event: str, records: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """The line `log.info(event, **record)` would write for each record, not yet written.

    Each record goes through the configured processors on its own, so the JSON and console
    renderers and `capture_logs()` see exactly what `log.info` gives them. A record that cannot
    be rendered, or that a processor drops, has no line. None when the chain does not end in
    text (a stdlib or bytes logger): log those records the ordinary way.
    """
    if not _info_enabled():
        return []
    config = structlog.get_config()
    out = config["logger_factory"]()
    lines: list[str] = []
    for record in records:
        try:
            line = _render(config["processors"], out, event, record)
        except Exception:  # noqa: S112 - one bad record must not cost the batch its lines
            continue
        if isinstance(line, str):
            lines.append(line)
        elif line is not None:
            return None
    return lines


def write_lines(lines: Sequence[str]) -> None:
    """Write rendered lines to the configured log stream together: one write, not one each."""
    if lines:
        structlog.get_config()["logger_factory"]().info("\n".join(lines))


def _info_enabled() -> bool:
    """False when the configured level filters out info (what make_filtering_bound_logger does)."""
    enabled = getattr(structlog.get_logger(), "is_enabled_for", None)
    return enabled is None or bool(enabled(logging.INFO))


def _render(
    processors: Iterable[Processor], out: Any, event: str, record: Mapping[str, Any]
) -> Any:
    """What the processor chain makes of `log.info(event, **record)`; None if it drops it."""
    event_dict: Any = {**record, "event": event}
    try:
        for processor in processors:
            event_dict = processor(out, "info", event_dict)
    except structlog.DropEvent:
        return None
    return event_dict
