"""Ports: the interfaces the use cases need from the outside world."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.code import VerificationCode
from domain.delivery import DeliveryStatus
from domain.events import Event
from domain.phone import PhoneNumber
from domain.verification import Verification


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message for the provider to deliver to one phone."""

    verification_id: str
    to: PhoneNumber
    body: str

    def __repr__(self) -> str:
        # The body carries the code, so it never shows in a traceback or log line.
        return f"OutgoingMessage(verification_id={self.verification_id!r}, to={self.to.masked()})"


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The provider's receipt for an accepted message."""

    sid: str
    status: DeliveryStatus


class MessageSender(Protocol):
    """Hands messages to the messaging provider."""

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Send `message` once and return the provider's receipt.

        Raises `MessageRejected` when the provider refuses the message for good and
        `ProviderUnavailable` when the call may succeed later. The sender does not
        retry by itself.
        """
        ...


class VerificationStore(Protocol):
    """Keeps verifications until they expire, with a lookup by provider message id."""

    async def create(self, verification: Verification) -> None:
        """Store `verification`, replacing any earlier one with the same id.

        The record expires at `verification.expires_at`. Raises `StoreUnavailable`.
        """
        ...

    async def get(self, verification_id: str) -> Verification | None:
        """Return the live verification, or None when it is missing or expired."""
        ...

    async def find_id_by_message_sid(self, message_sid: str) -> str | None:
        """Return the id of the verification whose message has `message_sid`."""
        ...

    async def update(
        self,
        verification_id: str,
        change: Callable[[Verification], Verification | None],
    ) -> Verification | None:
        """Apply `change` atomically and return the stored result.

        `change` returns the new verification, or None to leave the record as it is,
        in which case `update` returns None. It may be called more than once when
        concurrent writers collide, so it must be a pure function of its argument.
        The expiry time is kept. Raises `VerificationNotFound` for a missing or
        expired record and `StoreUnavailable`.
        """
        ...


class Notifier(Protocol):
    """Tells the rest of the system about verification events."""

    async def publish(self, event: Event) -> None:
        """Queue `event` for delivery and return without waiting for the peer.

        Never raises because a peer is away: undeliverable events are buffered or
        dropped by the implementation, which logs what it drops.
        """
        ...


class Clock(Protocol):
    """The current time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class CodeGenerator(Protocol):
    """Draws fresh one-time codes."""

    def generate(self) -> VerificationCode: ...


class PhoneNumberParser(Protocol):
    """Reads phone numbers as people and upstream services write them."""

    def parse(self, raw: str) -> PhoneNumber:
        """Return the E.164 number for `raw`, or raise `InvalidPhoneNumber`."""
        ...
