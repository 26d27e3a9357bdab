"""Fake dead-letter sink that records the letters it is given."""

import asyncio

from adapters.kafka.dead_letters import DeadLetter
from application.errors import PortError


class RecordingDeadLetterSink:
    """Keeps every dead letter in `letters`, or raises the errors queued with `fail_next`."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self._failures: list[PortError] = []
        self._changed = asyncio.Condition()

    def fail_next(self, *errors: PortError) -> None:
        """Raise `errors`, one per call, before storing letters again."""
        self._failures.extend(errors)

    async def send(self, letter: DeadLetter) -> None:
        if self._failures:
            raise self._failures.pop(0)
        async with self._changed:
            self.letters.append(letter)
            self._changed.notify_all()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[DeadLetter]:
        """Wait until `count` letters were stored, then return them all.

        Raises `TimeoutError` when fewer arrive within `timeout` seconds.
        """
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.letters) >= count)
        return list(self.letters)
