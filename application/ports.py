"""Ports: the interfaces the use cases need from the outside world."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.code import VerificationCode
from domain.delivery import DeliveryStatus
from domain.events import Event, SendRejectionReason
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


@dataclass(frozen=True, slots=True)
class ProviderMessage:
    """A message the provider holds, as listed back from it."""

    sid: str
    body: str
    status: DeliveryStatus
    created_at: datetime

    def __repr__(self) -> str:
        # The body carries a code.
        return f"ProviderMessage(sid={self.sid!r}, status={self.status!r})"


class MessageSender(Protocol):
    """Hands messages to the messaging provider."""

    async def send(self, message: OutgoingMessage) -> SentMessage:
        """Send `message` once and return the provider's receipt.

        Raises `MessageRejected` when the provider refuses the message for good and
        `ProviderUnavailable` when the call may succeed later. The sender does not
        retry by itself.
        """
        ...

    async def find_recent(self, to: PhoneNumber, since: datetime) -> list[ProviderMessage]:
        """Return the messages to `to` that the provider created at or after `since`.

        Used after a crash, to learn whether a send that was started reached the
        provider. Raises `ProviderUnavailable` when the provider cannot be asked.
        """
        ...


class VerificationStore(Protocol):
    """Keeps verifications until they expire, with a lookup by provider message id."""

    async def create(
        self,
        verification: Verification,
        may_replace: Callable[[Verification], bool] = lambda _: True,
    ) -> Verification | None:
        """Store `verification` and reset its check attempts, unless a stored one blocks it.

        When a record with the same id is stored (its code may have expired) and
        `may_replace(record)` is False,
        nothing is written and that record is returned; otherwise returns None. The
        test and the write are atomic. The record is kept until
        `verification.expires_at` plus the store's retention, so its final status can
        still be read. Raises `StoreUnavailable`.
        """
        ...

    async def record_attempt(self, verification_id: str) -> int:
        """Count one check attempt atomically and return the attempts made so far.

        The counter expires with the record and is reset by `create`. Raises
        `VerificationNotFound` for a missing record and `StoreUnavailable`.
        """
        ...

    async def get(self, verification_id: str) -> Verification | None:
        """Return the stored verification, or None once it is gone.

        A record is kept for the store's retention after its code expires, so the
        caller decides expiry with `Verification.is_expired`.
        """
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
        The expiry time is kept. Raises `VerificationNotFound` once the record is
        gone, and `StoreUnavailable`.
        """
        ...


class Claim(StrEnum):
    """Outcome of a claim: what the worker may do with the request."""

    ACQUIRED = "acquired"
    IN_PROGRESS = "in_progress"
    SEND_STARTED = "send_started"
    COMPLETED = "completed"


class RequestLedger(Protocol):
    """Remembers which requests were handled, so a redelivered one is not sent twice."""

    async def claim(self, request_key: str, owner: str, lease_seconds: float) -> Claim:
        """Claim `request_key` for `owner`.

        - ACQUIRED: the request is new, is held by `owner` already with no send
          started, or its previous claimant's lease ran out before a send started.
          `owner` is now its holder.
        - SEND_STARTED: a send was started, by `owner` itself or by a previous
          claimant whose lease ran out, and may or may not have reached the
          provider. `owner` is now its holder and must find out before sending again.
        - IN_PROGRESS: another owner holds the request and its lease still runs.
        - COMPLETED: the request was handled.

        A claim by the holder renews its lease, and so does `mark_send_started`.
        Raises `StoreUnavailable`.
        """
        ...

    async def mark_send_started(self, request_key: str, owner: str) -> None:
        """Record that the provider is about to be called for this request.

        Raises `RequestInProgress`, recording nothing, when another owner took the
        request over or it was completed, because a send now could duplicate theirs.
        """
        ...

    async def complete(self, request_key: str, owner: str) -> None:
        """Record that the request was handled, whatever its outcome."""
        ...


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """Whether one more send to a phone is allowed, and if not, which limit and until when."""

    allowed: bool
    reason: SendRejectionReason | None = None
    retry_after_seconds: int | None = None


class SendLimiter(Protocol):
    """Abuse limits shared by every worker: sends per phone per hour and day, and overall."""

    async def acquire(self, phone: PhoneNumber, token: str, now: datetime) -> LimitDecision:
        """Count one send to `phone` under `token` if every limit allows it.

        Counting is atomic, so concurrent callers never exceed a limit. A rejected
        call counts nothing, and a `token` counted already is allowed without counting
        again. Raises `StoreUnavailable`.
        """
        ...

    async def release(self, phone: PhoneNumber, token: str) -> None:
        """Give back the send counted under `token`, because it did not happen."""
        ...


class PlainCodeStore(Protocol):
    """Stores plain codes for downstream consumers of the older contract."""

    async def put(self, verification_id: str, code: VerificationCode, ttl_seconds: int) -> None:
        """Store the plain `code` under the bare verification id for `ttl_seconds`.

        Raises `StoreUnavailable`.
        """
        ...

    async def delete(self, verification_id: str) -> None: ...


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
