"""Bounded frame buffer and reconnect backoff shared by the background notifiers."""

import asyncio
import logging
import random
import time
from collections import deque
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FrameBuffer(Generic[T]):
    """Frames waiting to be sent, oldest first, at most `capacity` of them.

    `append` never waits: on a full buffer it drops the oldest frame. Drops are counted
    in `dropped` and logged as `notifier_frames_dropped` at most once per
    `drop_log_interval_seconds`, and `log_drops()` logs the rest. The sender reads the
    oldest frame with `first()` and removes it with `remove_first()` only after it was
    sent, so a failed send keeps it for the next try. Use it from one event loop only.
    """

    def __init__(
        self,
        capacity: int,
        *,
        notifier: str,
        target: str,
        drop_log_interval_seconds: float = 10.0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"invalid buffer_size {capacity}: use 1 or more frames")
        if not drop_log_interval_seconds > 0:
            raise ValueError(
                f"invalid drop_log_interval_seconds {drop_log_interval_seconds}: "
                "use a number of seconds above 0"
            )
        self._capacity = capacity
        self._notifier = notifier
        self._target = target
        self._drop_log_interval_seconds = drop_log_interval_seconds
        self._frames: deque[T] = deque()
        self._not_empty = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._dropped = 0
        self._drops_not_logged = 0
        self._last_drop_log_at: float | None = None

    @property
    def capacity(self) -> int:
        """Maximum number of frames kept."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """Number of frames dropped so far, by a full buffer or by `drop_all`."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._frames)

    def append(self, frame: T) -> None:
        """Add `frame` at the end, dropping the oldest frame when the buffer is full."""
        if len(self._frames) >= self._capacity:
            self._frames.popleft()
            self.record_drops(1)
        self._frames.append(frame)
        self._not_empty.set()
        self._empty.clear()

    def first(self) -> T:
        """Return the oldest frame without removing it. Raises `IndexError` when empty."""
        return self._frames[0]

    def remove_first(self) -> None:
        """Remove the oldest frame, after it was sent."""
        self._frames.popleft()
        if not self._frames:
            self._not_empty.clear()
            self._empty.set()

    def drop_all(self) -> int:
        """Drop every waiting frame, count the drops, and return how many there were."""
        count = len(self._frames)
        self._frames.clear()
        self._not_empty.clear()
        self._empty.set()
        self._dropped += count
        return count

    async def wait_not_empty(self) -> None:
        """Wait until at least one frame is waiting."""
        await self._not_empty.wait()

    async def wait_empty(self) -> None:
        """Wait until every frame was sent or dropped."""
        await self._empty.wait()

    def record_drops(self, count: int) -> None:
        """Count `count` frames dropped, and log them unless a drop line went out recently."""
        self._dropped += count
        self._drops_not_logged += count
        now = time.monotonic()
        if (
            self._last_drop_log_at is None
            or now - self._last_drop_log_at >= self._drop_log_interval_seconds
        ):
            self.log_drops()

    def log_drops(self) -> None:
        """Log the drops counted since the last drop line, if any."""
        if not self._drops_not_logged:
            return
        logger.warning(
            "notifier_frames_dropped",
            extra={
                "notifier": self._notifier,
                "target": self._target,
                "frames_dropped": self._drops_not_logged,
                "frames_dropped_total": self._dropped,
                "buffer_size": self._capacity,
            },
        )
        self._drops_not_logged = 0
        self._last_drop_log_at = time.monotonic()


def backoff_delay(failures_in_a_row: int, initial_seconds: float, max_seconds: float) -> float:
    """Return the wait in seconds before the next try after `failures_in_a_row` failures.

    The ceiling doubles from `initial_seconds` with each failure up to `max_seconds`,
    and the delay is drawn between half the ceiling and the ceiling, so many processes
    that lost the same peer do not reconnect in step.
    """
    # Capping the exponent keeps 2 ** n finite after a long outage.
    exponent = min(max(failures_in_a_row - 1, 0), 30)
    ceiling = min(max_seconds, initial_seconds * 2.0**exponent)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def check_backoff(initial_seconds: float, max_seconds: float) -> None:
    """Raise `ValueError` unless 0 < `initial_seconds` <= `max_seconds`."""
    if not initial_seconds > 0:
        raise ValueError(
            f"invalid initial_backoff_seconds {initial_seconds}: use a number of seconds above 0"
        )
    if max_seconds < initial_seconds:
        raise ValueError(
            f"invalid max_backoff_seconds {max_seconds}: use a value of at least "
            f"initial_backoff_seconds ({initial_seconds})"
        )


def describe_error(error: BaseException) -> str:
    """Return the error's class name and message, for log fields."""
    text = str(error)
    return type(error).__name__ + (": " + text if text else "")
