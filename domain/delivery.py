"""Delivery status of a WhatsApp message and the rule for applying status reports."""

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """Message statuses that Twilio reports for an outbound WhatsApp message."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES

    @property
    def is_terminal(self) -> bool:
        """True for statuses after which no report changes anything."""
        return self in _FAILURES or self is DeliveryStatus.READ


_FAILURES = frozenset({DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED})

# Progress order of the successful path. Twilio does not promise callback order, so a
# report only moves a message forward along this order.
_PROGRESS = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
}


def advances(current: DeliveryStatus | None, reported: DeliveryStatus) -> bool:
    """Tell whether `reported` moves a message that is now at `current`.

    - Nothing moves a message out of `failed`, `undelivered` or `read`.
    - A failure applies while the message has not been delivered: once the person's
      phone confirmed delivery, a failure report is contradictory and is ignored.
    - Otherwise a status applies only when it is further along the path, so a late or
      repeated report never moves the status backwards. A `read` that arrives before
      `delivered` is kept.
    """
    if current is None:
        return True
    if current.is_terminal:
        return False
    if reported.is_failure:
        return _PROGRESS[current] < _PROGRESS[DeliveryStatus.DELIVERED]
    return _PROGRESS[reported] > _PROGRESS[current]
