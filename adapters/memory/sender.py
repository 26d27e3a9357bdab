"""Fake message sender that records what it was asked to send."""

import asyncio
import itertools

from application.errors import PortError
from application.ports import OutgoingMessage, SentMessage
from domain.delivery import DeliveryStatus


class RecordingMessageSender:
    """Accepts every message, or raises the errors queued with `fail_next`."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self._failures: list[PortError] = []
        self._sids = (f"SM{number:032x}" for number in itertools.count(1))
        self._changed = asyncio.Condition()

    def fail_next(self, *errors: PortError) -> None:
        """Raise `errors`, one per call, before accepting messages again."""
        self._failures.extend(errors)

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(message)
        async with self._changed:
            self._changed.notify_all()
        return SentMessage(next(self._sids), DeliveryStatus.QUEUED)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[OutgoingMessage]:
        """Wait until `count` messages were sent, then return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.sent) >= count)
        return list(self.sent)
