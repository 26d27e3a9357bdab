"""RepeatedRecordFilter with a hand-driven clock: what passes, what is counted, what is held."""

import logging
import sys

import pytest

from adapters.observability.metrics import REGISTRY
from entrypoints.log_repeats import RepeatedRecordFilter

WINDOW_SECONDS = 10.0


class ManualClock:
    """A monotonic clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Emitted:
    """Records the summary records that the filter emits."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []

    def __call__(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record(
    message: str = "store_unavailable", level: int = logging.WARNING, **fields: object
) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "tests.repeats",
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            **fields,
        }
    )


def _suppressed(event: str) -> float:
    return (
        REGISTRY.get_sample_value("verification_log_events_suppressed_total", {"event": event})
        or 0.0
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emitted() -> Emitted:
    return Emitted()


@pytest.fixture
def repeats(clock: ManualClock, emitted: Emitted) -> RepeatedRecordFilter:
    return RepeatedRecordFilter(emitted, window_seconds=WINDOW_SECONDS, max_keys=3, clock=clock)


def test_window_repeats_are_counted(repeats: RepeatedRecordFilter) -> None:
    before = _suppressed("store_unavailable")

    passed = [repeats.filter(_record(error="TimeoutError()")) for _ in range(4)]

    assert passed == [True, False, False, False]
    assert _suppressed("store_unavailable") == before + 3


def test_record_after_window_carries_count(
    repeats: RepeatedRecordFilter, clock: ManualClock
) -> None:
    for _ in range(3):
        repeats.filter(_record(error="TimeoutError()"))
    clock.now += WINDOW_SECONDS

    after_window = _record(error="TimeoutError()")
    assert repeats.filter(after_window)
    assert after_window.repeated == 2

    repeat = _record(error="TimeoutError()")
    assert not repeats.filter(repeat)


def test_record_after_quiet_window_has_no_count(
    repeats: RepeatedRecordFilter, clock: ManualClock
) -> None:
    repeats.filter(_record())
    clock.now += WINDOW_SECONDS + 1

    later = _record()

    assert repeats.filter(later)
    assert not hasattr(later, "repeated")


def test_different_errors_are_not_repeats(repeats: RepeatedRecordFilter) -> None:
    assert repeats.filter(_record(error="TimeoutError()"))
    assert repeats.filter(_record(error="ConnectionError()"))
    assert repeats.filter(_record(error_code="63016"))
    assert repeats.filter(_record("send_failed", error="TimeoutError()"))
    assert repeats.filter(_record(level=logging.ERROR, error="TimeoutError()"))


def test_other_logger_is_not_a_repeat(repeats: RepeatedRecordFilter) -> None:
    first = _record()
    other = _record()
    other.name = "tests.other"

    assert repeats.filter(first)
    assert repeats.filter(other)


def test_info_records_always_pass(repeats: RepeatedRecordFilter) -> None:
    passed = [repeats.filter(_record("callback_handled", level=logging.INFO)) for _ in range(3)]

    assert passed == [True, True, True]


def test_flush_emits_pending_counts(
    repeats: RepeatedRecordFilter, emitted: Emitted, clock: ManualClock
) -> None:
    for _ in range(3):
        repeats.filter(_record(error="TimeoutError()"))
    repeats.filter(_record("quiet_event"))

    repeats.flush()

    [summary] = emitted.records
    assert summary.getMessage() == "store_unavailable"
    assert summary.repeated == 2
    assert summary.error == "TimeoutError()"
    repeats.flush()
    assert len(emitted.records) == 1

    assert not repeats.filter(_record(error="TimeoutError()"))
    clock.now += WINDOW_SECONDS
    after_window = _record(error="TimeoutError()")
    assert repeats.filter(after_window)
    assert after_window.repeated == 1


def test_summary_holds_no_traceback(repeats: RepeatedRecordFilter, emitted: Emitted) -> None:
    try:
        raise TimeoutError("store timed out")
    except TimeoutError:
        records = [_record(exc_info=sys.exc_info()) for _ in range(2)]
    for record in records:
        repeats.filter(record)

    repeats.flush()

    [summary] = emitted.records
    assert summary.exc_info is None
    assert summary.repeated == 1


def test_evicted_key_emits_its_count(repeats: RepeatedRecordFilter, emitted: Emitted) -> None:
    repeats.filter(_record("oldest"))
    repeats.filter(_record("oldest"))
    for event in ("second", "third"):
        repeats.filter(_record(event))
    assert emitted.records == []

    repeats.filter(_record("fourth"))

    [summary] = emitted.records
    assert summary.getMessage() == "oldest"
    assert summary.repeated == 1
    assert repeats.filter(_record("oldest"))


def test_eviction_drops_least_recent_key(repeats: RepeatedRecordFilter) -> None:
    for event in ("first", "second", "third"):
        repeats.filter(_record(event))
    assert not repeats.filter(_record("first"))

    repeats.filter(_record("fourth"))

    assert not repeats.filter(_record("first"))
    assert repeats.filter(_record("second"))


def test_summary_passes_own_filter(clock: ManualClock) -> None:
    written: list[logging.LogRecord] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record)

    handler = ListHandler()
    repeats = RepeatedRecordFilter(handler.handle, window_seconds=WINDOW_SECONDS, clock=clock)
    handler.addFilter(repeats)
    for _ in range(3):
        handler.handle(_record())

    repeats.flush()

    assert [getattr(record, "repeated", None) for record in written] == [None, 2]


def test_structlog_event_dicts_are_repeats(repeats: RepeatedRecordFilter) -> None:
    first = _record()
    first.msg = {"event": "store_unavailable", "timestamp": "2026-01-01T00:00:00Z"}
    second = _record()
    second.msg = {"event": "store_unavailable", "timestamp": "2026-01-01T00:00:01Z"}

    assert repeats.filter(first)
    assert not repeats.filter(second)


@pytest.mark.parametrize(("window_seconds", "max_keys"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_invalid_limits_are_rejected(window_seconds: float, max_keys: int) -> None:
    with pytest.raises(ValueError, match="invalid"):
        RepeatedRecordFilter(Emitted(), window_seconds=window_seconds, max_keys=max_keys)


def test_summary_keeps_context_fields(clock: ManualClock, emitted: Emitted) -> None:
    context = {"topic": "Verification", "error": "from the context"}
    repeats = RepeatedRecordFilter(
        emitted, window_seconds=WINDOW_SECONDS, clock=clock, context_fields=lambda: context
    )
    for _ in range(2):
        repeats.filter(_record(error="TimeoutError()"))

    repeats.flush()

    [summary] = emitted.records
    assert summary.topic == "Verification"
    assert summary.error == "TimeoutError()"
