"""Plumbing the background notifiers share: `async with` support and the stop report."""

import logging
from types import TracebackType
from typing import Self


class BackgroundNotifier:
    """Base of notifiers that send from a background task between `start` and `stop`."""

    def start(self) -> None:
        raise NotImplementedError

    async def stop(self, drain_timeout_seconds: float = 5.0) -> None:
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


def log_stopped(logger: logging.Logger, frames_left: bool, extra: dict[str, object]) -> None:
    """Log the stop at WARNING when frames were left unsent or unconfirmed, else at INFO."""
    if frames_left:
        logger.warning("notifier_stopped_with_frames_left", extra=extra)
    else:
        logger.info("notifier_stopped", extra=extra)
