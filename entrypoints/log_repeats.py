"""A logging filter that lets the first of repeated warnings through and counts the rest."""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from adapters.observability import metrics

# The field that carries how many repeats of a record were left out before it.
REPEATED_FIELD = "repeated"
# Extra fields that tell two records of one event apart, such as two different errors.
IDENTIFYING_FIELDS = ("error", "error_code", "reason", "status")
# Longer event names are cut in the metric label, so that a long message stays one label.
MAX_EVENT_LABEL_LENGTH = 100
# Marks the summary records that the filter emits itself, so that they pass it.
_SUMMARY_ATTRIBUTE = "_repeat_summary"


@dataclass(slots=True)
class _Window:
    """The repeat window of one key: when it ends and what it left out so far."""

    ends_at: float
    suppressed: int = 0
    # A copy of the first left-out record without its traceback, emitted with the count
    # when no later record of the key carries it.
    summary: logging.LogRecord | None = None


class RepeatedRecordFilter(logging.Filter):
    """Passes the first record of each event per window and leaves out its repeats.

    Records below `level` always pass. Two records are repeats when they share the
    logger name, the level, the formatted message, the exception type and the values
    of IDENTIFYING_FIELDS. Each record left out is counted in the
    `verification_log_events_suppressed` metric. The first record of a key after a
    window with repeats carries `repeated`, the number left out. `flush` hands a
    summary record with `repeated` to `emit` for every key whose count is still
    pending, and so does the eviction of a key when more than `max_keys` keys are held.

    A summary is written later, outside the context of the record it copies, so
    `context_fields` is called when that record is left out, and the fields it returns
    are kept on the summary, unless the record already has them.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        window_seconds: float = 10.0,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
        context_fields: Callable[[], Mapping[str, object]] = dict,
    ) -> None:
        super().__init__()
        if window_seconds <= 0:
            raise ValueError(f"invalid window of {window_seconds} s: expected more than 0")
        if max_keys < 1:
            raise ValueError(f"invalid key limit {max_keys}: expected 1 or more")
        self._emit = emit
        self._window_seconds = window_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._level = level
        self._context_fields = context_fields
        # Least recently seen key first, so eviction drops the key idle the longest.
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()
        # Records are logged from several threads, such as the span exporter's.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._level or getattr(record, _SUMMARY_ATTRIBUTE, False):
            return True
        key = _key(record)
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now < window.ends_at:
                window.suppressed += 1
                if window.summary is None:
                    window.summary = _summary_copy(record, self._context_fields())
                passed = False
            else:
                if window is not None and window.suppressed:
                    setattr(record, REPEATED_FIELD, window.suppressed)
                self._windows[key] = _Window(now + self._window_seconds)
                passed = True
            self._windows.move_to_end(key)
            evicted = self._evict()
        if not passed:
            metrics.LOG_EVENTS_SUPPRESSED.labels(_event_label(record)).inc()
        # Emitting runs this filter again, so it happens after the lock is released.
        for summary in evicted:
            self._emit(summary)
        return passed

    def flush(self) -> None:
        """Emit a summary record for every key with repeats not yet reported."""
        with self._lock:
            summaries = [_take_summary(window) for window in self._windows.values()]
        for summary in summaries:
            if summary is not None:
                self._emit(summary)

    def _evict(self) -> list[logging.LogRecord]:
        summaries = []
        while len(self._windows) > self._max_keys:
            _, window = self._windows.popitem(last=False)
            summary = _take_summary(window)
            if summary is not None:
                summaries.append(summary)
        return summaries


def _key(record: logging.LogRecord) -> Hashable:
    event, fields = _event_and_fields(record)
    values = tuple(str(value) for value in fields)
    exception = record.exc_info[0] if record.exc_info else None
    return record.name, record.levelno, event, exception, values


def _event_and_fields(record: logging.LogRecord) -> tuple[str, list[object]]:
    """Return the record's formatted message and its IDENTIFYING_FIELDS values."""
    if isinstance(record.msg, dict):
        # A structlog event dictionary, whose time stamp differs on every record.
        event_dict = record.msg
        return str(event_dict.get("event")), [event_dict.get(name) for name in IDENTIFYING_FIELDS]
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        # The arguments do not fit the format. The handler reports that when it formats.
        message = str(record.msg)
    return message, [getattr(record, name, None) for name in IDENTIFYING_FIELDS]


def _event_label(record: logging.LogRecord) -> str:
    # The message template, not the formatted message, so that the label has few values.
    event = record.msg.get("event") if isinstance(record.msg, dict) else record.msg
    return str(event)[:MAX_EVENT_LABEL_LENGTH]


def _summary_copy(record: logging.LogRecord, context: Mapping[str, object]) -> logging.LogRecord:
    # Without the traceback, so a held summary keeps no stack frames alive.
    summary = logging.makeLogRecord({**context, **vars(record)})
    summary.exc_info = None
    summary.exc_text = None
    summary.stack_info = None
    setattr(summary, _SUMMARY_ATTRIBUTE, True)
    return summary


def _take_summary(window: _Window) -> logging.LogRecord | None:
    """Return the window's summary with its count, and start counting from zero."""
    summary = window.summary
    if summary is None:
        return None
    setattr(summary, REPEATED_FIELD, window.suppressed)
    window.suppressed = 0
    window.summary = None
    return summary
