"""Structured logging for both processes: JSON lines, or readable lines on a terminal."""

import logging
import sys
from typing import Literal, TextIO

import structlog
from opentelemetry import trace

from entrypoints.log_repeats import RepeatedRecordFilter

# Attributes every stdlib LogRecord has; anything else on a record came from `extra=`.
# uvicorn adds `color_message`, a copy of the message with terminal colour codes.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def _add_extra_fields(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    record = event_dict.get("_record")
    if record is not None:
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def _add_trace_ids(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    # Log records are formatted in the task that logs them, so the current span is
    # the one the event happened in.
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
    return event_dict


def _context_fields() -> dict[str, object]:
    """Return the fields that the formatter would add from the current context now."""
    fields = structlog.contextvars.get_contextvars()
    return dict(_add_trace_ids(None, "", fields))


class _StandardErrorHandler(logging.StreamHandler[TextIO]):
    """Writes to standard error, leaving out repeated warnings as `repeats` decides."""

    def __init__(self, repeat_window_seconds: float) -> None:
        super().__init__(sys.stderr)
        self.repeats = RepeatedRecordFilter(
            self.handle, window_seconds=repeat_window_seconds, context_fields=_context_fields
        )
        self.addFilter(self.repeats)

    def close(self) -> None:
        # logging.shutdown closes every handler when the process exits, so the counts of
        # repeats that no later record carried are written then.
        self.repeats.flush()
        super().close()


def configure_logging(
    level: str = "INFO",
    log_format: Literal["auto", "json", "console"] = "auto",
    repeat_window_seconds: float = 10.0,
) -> None:
    """Route stdlib and structlog records through one renderer on standard error.

    A warning or error that repeats within `repeat_window_seconds` is written once, and
    the next one after the window carries `repeated`, the number left out.
    """
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _add_extra_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = _StandardErrorHandler(repeat_window_seconds)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library loggers stay at WARNING so a healthy service logs only its own events.
    for noisy in ("aiokafka", "twilio", "websockets", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
