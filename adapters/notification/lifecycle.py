"""Plumbing the background notifiers share: the task, the buffer, `async with`, the stop report."""

import asyncio
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from adapters.notification.buffer import FrameBuffer

Frame = TypeVar("Frame")

logger = logging.getLogger(__name__)


class BackgroundNotifier:
    """Base of notifiers that send from a background task between `start` and `stop`.

    A subclass calls `__init__` first, and provides `target` (the peer, as logs name
    it), `_run` (the task's work until `_stop_requested` is set), `_started_fields`
    and `stop`, which sets `_stopped`.
    """

    # The name of the background task, as asyncio's debug output and task dumps show it.
    task_name = "notifier"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._stop_requested = asyncio.Event()

    @property
    def target(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        """Start the background task, from inside the event loop.

        Raises `RuntimeError` when the notifier was already started or stopped.
        """
        described = f"{type(self).__name__} for {self.target}"
        if self._stopped:
            raise RuntimeError(f"{described} is stopped: create a new one")
        if self._task is not None:
            raise RuntimeError(f"{described} is already started: call start() once")
        self._task = asyncio.create_task(self._run(), name=self.task_name)
        logger.info("notifier_started", extra=self._started_fields())

    async def stop(self, drain_timeout_seconds: float = 5.0) -> None:
        raise NotImplementedError

    def _run(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def _started_fields(self) -> dict[str, object]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class BufferedNotifier(BackgroundNotifier, Generic[Frame]):
    """Base of background notifiers whose frames wait in a `FrameBuffer` until sent.

    A subclass sets `_buffer` in its `__init__`.
    """

    _buffer: FrameBuffer[Frame]

    @property
    def frames_dropped(self) -> int:
        """Number of frames dropped because the buffer was full or the notifier stopped."""
        return self._buffer.dropped

    @property
    def frames_buffered(self) -> int:
        """Number of frames waiting to be sent."""
        return len(self._buffer)

    def _enqueue(self, frame: Frame) -> None:
        """Buffer `frame`, or count it as dropped once the notifier has stopped."""
        if self._stopped:
            self._buffer.record_drops(1)
            return
        self._buffer.append(frame)


def log_stopped(logger: logging.Logger, frames_left: bool, extra: dict[str, object]) -> None:
    """Log the stop at WARNING when frames were left unsent or unconfirmed, else at INFO."""
    if frames_left:
        logger.warning("notifier_stopped_with_frames_left", extra=extra)
    else:
        logger.info("notifier_stopped", extra=extra)
