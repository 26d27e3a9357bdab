"""Fake message sender that records what it was asked to send."""

import asyncio
import itertools
from datetime import UTC, datetime

from application.errors import PortError
from application.ports import OutgoingMessage, ProviderMessage, SentMessage
from domain.delivery import DeliveryStatus
from domain.phone import PhoneNumber


class RecordingMessageSender:
    """Accepts every message, or raises the errors queued with `fail_next`."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        # What the provider holds, including messages it accepted while the caller
        # saw an error (see `accept_then_fail_next`).
        self.provider_messages: list[tuple[OutgoingMessage, ProviderMessage]] = []
        self._accept_then_fail = 0
        self._failures: list[PortError] = []
        self._sids = (f"SM{number:032x}" for number in itertools.count(1))
        self._changed = asyncio.Condition()

    def fail_next(self, *errors: PortError) -> None:
        """Raise `errors`, one per call, before accepting messages again."""
        self._failures.extend(errors)

    def accept_then_fail_next(self, count: int = 1) -> None:
        """Accept the next `count` messages at the provider, then raise as a crash would."""
        self._accept_then_fail += count

    async def send(self, message: OutgoingMessage) -> SentMessage:
        if self._failures:
            raise self._failures.pop(0)
        sid = next(self._sids)
        self.provider_messages.append(
            (message, ProviderMessage(sid, message.body, DeliveryStatus.QUEUED, datetime.now(UTC)))
        )
        if self._accept_then_fail:
            self._accept_then_fail -= 1
            raise ConnectionResetError("the process died after the provider accepted")
        self.sent.append(message)
        async with self._changed:
            self._changed.notify_all()
        return SentMessage(sid, DeliveryStatus.QUEUED)

    async def find_recent(self, to: PhoneNumber, since: datetime) -> list[ProviderMessage]:
        return [
            found
            for message, found in self.provider_messages
            if message.to == to and found.created_at >= since
        ]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[OutgoingMessage]:
        """Wait until `count` messages were sent, then return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.sent) >= count)
        return list(self.sent)
