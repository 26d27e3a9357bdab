"""A logging handler that tests await: it wakes waiters on each record of the watched loggers."""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LogWatcher(logging.Handler):
    """Collects log records and lets a test wait for one with a given message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def named(self, message: str) -> list[logging.LogRecord]:
        return [record for record in self.records if record.getMessage() == message]

    async def wait_for(self, message: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` records with `message` have arrived in total."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.named(message)) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = sorted({record.getMessage() for record in self.records})
            raise TimeoutError(
                f"timed out after {timeout} s waiting for {count} {message!r} log records; "
                f"{len(self.named(message))} arrived, among: {seen}"
            ) from None


@contextmanager
def watching(*logger_names: str) -> Iterator[LogWatcher]:
    """Attach a `LogWatcher` at DEBUG to each named logger for the block."""
    watcher = LogWatcher()
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.addHandler(watcher)
        each.setLevel(logging.DEBUG)
    try:
        yield watcher
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.removeHandler(watcher)
            each.setLevel(level)
