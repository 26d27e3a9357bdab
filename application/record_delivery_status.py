"""RecordDeliveryStatus: apply a provider's status report to the verification it concerns."""

import logging
from dataclasses import dataclass
from enum import StrEnum

from application.errors import VerificationNotFound
from application.ports import Clock, Notifier, VerificationStore
from domain.delivery import DeliveryStatus
from domain.events import DeliveryStatusChanged
from domain.verification import Verification

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A status report for one message, as the provider sent it."""

    message_sid: str
    status: str
    verification_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ReportOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_STATUS = "unknown_status"


class RecordDeliveryStatus:
    """Moves a verification's delivery status forward and publishes the change."""

    def __init__(self, store: VerificationStore, notifier: Notifier, clock: Clock) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock

    async def execute(self, report: DeliveryReport) -> ReportOutcome:
        """Apply `report` and publish `DeliveryStatusChanged` when the status moved.

        Duplicate, stale and out-of-order reports change nothing and publish nothing.
        """
        try:
            status = DeliveryStatus(report.status)
        except ValueError:
            logger.warning(
                "delivery_status_unknown",
                extra={"message_sid": report.message_sid, "status": report.status[:40]},
            )
            return ReportOutcome.UNKNOWN_STATUS

        verification_id = report.verification_id or await self._store.find_id_by_message_sid(
            report.message_sid
        )
        if verification_id is None:
            return self._unknown_message(report)

        now = self._clock.now()

        # A report may overtake the send call's response, so a record without a message
        # SID yet takes a report addressed to its id. A report found only through the
        # SID lookup must match exactly: that lookup outlives a resend of the same id.
        # NOTE: a report for the replaced message that arrives, addressed by id, while
        # the resend's own call is still in flight is taken for the new message.
        accepted_sids: set[str | None] = {report.message_sid}
        if report.verification_id is not None:
            accepted_sids.add(None)

        def apply(current: Verification) -> Verification | None:
            if current.message_sid not in accepted_sids:
                return None
            return current.record_delivery(
                status, now, report.message_sid, report.error_code, report.error_message
            )

        try:
            updated = await self._store.update(verification_id, apply)
        except VerificationNotFound:
            return self._unknown_message(report)
        if updated is None:
            logger.info(
                "delivery_status_ignored",
                extra={"verification_id": verification_id, "status": str(status)},
            )
            return ReportOutcome.IGNORED

        await self._notifier.publish(
            DeliveryStatusChanged(
                verification_id,
                report.message_sid,
                status,
                now,
                report.error_code if status.is_failure else None,
                report.error_message if status.is_failure else None,
            )
        )
        logger.info(
            "delivery_status_recorded",
            extra={"verification_id": verification_id, "status": str(status)},
        )
        return ReportOutcome.APPLIED

    def _unknown_message(self, report: DeliveryReport) -> ReportOutcome:
        logger.warning("delivery_status_unmatched", extra={"message_sid": report.message_sid})
        return ReportOutcome.UNKNOWN_MESSAGE
