"""RecordDeliveryStatus against the fakes: ordering, duplicates, failures, unknown input."""

from datetime import timedelta

from application.record_delivery_status import DeliveryReport, ReportOutcome
from application.request_verification import VerificationRequest
from domain.delivery import DeliveryStatus
from domain.events import DeliveryStatusChanged
from domain.verification import Verification
from tests.unit.conftest import Fakes


async def _sent(fakes: Fakes, verification_id: str = "user-1") -> str:
    # Past the resend cooldown, so a second call in one test sends a new code.
    fakes.clock.advance(60)
    await fakes.container.request_verification().execute(
        VerificationRequest(verification_id, "+593991234567"), "owner-1"
    )
    fakes.notifier.clear()
    stored = await fakes.store.get(verification_id)
    assert stored is not None and stored.message_sid is not None
    return stored.message_sid


async def _report(fakes: Fakes, sid: str, status: str, **fields: str) -> ReportOutcome:
    use_case = fakes.container.record_delivery_status()
    return await use_case.execute(DeliveryReport(sid, status, **fields))


def _published_statuses(fakes: Fakes) -> list[DeliveryStatus]:
    return [
        event.delivery_status
        for event in fakes.notifier.events
        if isinstance(event, DeliveryStatusChanged)
    ]


async def test_out_of_order_callbacks_end_read(fakes: Fakes) -> None:
    sid = await _sent(fakes)

    outcomes = [
        await _report(fakes, sid, status, verification_id="user-1")
        for status in ("sent", "read", "delivered", "delivered")
    ]

    assert outcomes == [
        ReportOutcome.APPLIED,
        ReportOutcome.APPLIED,
        ReportOutcome.IGNORED,
        ReportOutcome.IGNORED,
    ]
    assert _published_statuses(fakes) == [DeliveryStatus.SENT, DeliveryStatus.READ]
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.READ


async def test_failed_then_late_sent_stays_failed(fakes: Fakes) -> None:
    sid = await _sent(fakes)

    await _report(fakes, sid, "failed", error_code="63016", error_message="Outside window")
    late = await _report(fakes, sid, "sent")

    assert late is ReportOutcome.IGNORED
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.FAILED
    assert stored.error_code == "63016"
    [event] = fakes.notifier.events
    assert isinstance(event, DeliveryStatusChanged)
    assert event.error_code == "63016"


async def test_undelivered_without_message_records_code(fakes: Fakes) -> None:
    sid = await _sent(fakes)

    outcome = await _report(fakes, sid, "undelivered", error_code="30008")

    assert outcome is ReportOutcome.APPLIED
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.UNDELIVERED
    assert stored.error_code == "30008"
    assert stored.error_message is None


async def test_unknown_status_changes_nothing(fakes: Fakes) -> None:
    sid = await _sent(fakes)

    outcome = await _report(fakes, sid, "teleported")

    assert outcome is ReportOutcome.UNKNOWN_STATUS
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.QUEUED
    assert fakes.notifier.events == []


async def test_unknown_message_sid_is_reported(fakes: Fakes) -> None:
    outcome = await _report(fakes, "SM" + "f" * 32, "delivered")

    assert outcome is ReportOutcome.UNKNOWN_MESSAGE
    assert fakes.notifier.events == []


async def test_report_found_by_sid_without_verification_id(fakes: Fakes) -> None:
    sid = await _sent(fakes)

    outcome = await _report(fakes, sid, "delivered")

    assert outcome is ReportOutcome.APPLIED
    assert _published_statuses(fakes) == [DeliveryStatus.DELIVERED]


async def test_report_for_replaced_message_is_ignored(fakes: Fakes) -> None:
    first_sid = await _sent(fakes)
    await _sent(fakes)

    outcome = await _report(fakes, first_sid, "delivered", verification_id="user-1")

    assert outcome is ReportOutcome.IGNORED
    assert fakes.notifier.events == []


async def test_report_after_retention_is_unknown(fakes: Fakes) -> None:
    sid = await _sent(fakes)
    fakes.clock.advance(300 + 3600)

    outcome = await _report(fakes, sid, "delivered", verification_id="user-1")

    assert outcome is ReportOutcome.UNKNOWN_MESSAGE


async def test_report_by_old_sid_skips_resent_record(fakes: Fakes) -> None:
    old_sid = await _sent(fakes)
    stored = await fakes.store.get("user-1")
    assert stored is not None
    resent = Verification.start(
        "user-1", stored.phone, "e" * 64, fakes.clock.now(), timedelta(minutes=5)
    )
    await fakes.store.create(resent)

    outcome = await _report(fakes, old_sid, "delivered")

    assert outcome is ReportOutcome.IGNORED
    current = await fakes.store.get("user-1")
    assert current is not None
    assert current.message_sid is None
    assert current.delivery_status is None
