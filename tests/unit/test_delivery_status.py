"""Delivery status rules: reports only move a message forward."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.delivery import DeliveryStatus, advances
from domain.phone import PhoneNumber
from domain.verification import Verification

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROGRESS = [
    DeliveryStatus.QUEUED,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
]


def started() -> Verification:
    return Verification.start(
        "user-1", PhoneNumber("+593991234567"), "d" * 64, NOW, timedelta(minutes=5)
    )


def apply_all(statuses: list[DeliveryStatus]) -> tuple[Verification, list[DeliveryStatus]]:
    verification = started()
    applied = []
    for status in statuses:
        updated = verification.record_delivery(status, NOW, "SM1")
        if updated is not None:
            verification = updated
            applied.append(status)
    return verification, applied


def test_sent_read_delivered_delivered_ends_read() -> None:
    final, applied = apply_all(
        [
            DeliveryStatus.SENT,
            DeliveryStatus.READ,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.DELIVERED,
        ]
    )

    assert final.delivery_status is DeliveryStatus.READ
    assert applied == [DeliveryStatus.SENT, DeliveryStatus.READ]


def test_failed_then_late_sent_stays_failed() -> None:
    verification = started().record_delivery(DeliveryStatus.FAILED, NOW, "SM1", "63016", None)
    assert verification is not None

    assert verification.record_delivery(DeliveryStatus.SENT, NOW, "SM1") is None
    assert verification.delivery_status is DeliveryStatus.FAILED
    assert verification.error_code == "63016"


def test_undelivered_records_error_code_without_message() -> None:
    verification = started().record_delivery(DeliveryStatus.UNDELIVERED, NOW, "SM1", "30008", None)

    assert verification is not None
    assert verification.error_code == "30008"
    assert verification.error_message is None


def test_failure_after_delivered_is_ignored() -> None:
    delivered, _ = apply_all([DeliveryStatus.DELIVERED])

    assert delivered.record_delivery(DeliveryStatus.FAILED, NOW, "SM1", "30008") is None


@pytest.mark.parametrize(
    "current", [DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.SENT]
)
def test_failure_applies_before_delivery(current: DeliveryStatus) -> None:
    assert advances(current, DeliveryStatus.FAILED)
    assert advances(current, DeliveryStatus.UNDELIVERED)


def test_accept_message_keeps_status_from_earlier_callback() -> None:
    verification = started().record_delivery(DeliveryStatus.SENT, NOW, "SM1")
    assert verification is not None

    accepted = verification.accept_message("SM1", DeliveryStatus.QUEUED, NOW)

    assert accepted.delivery_status is DeliveryStatus.SENT
    assert accepted.message_sid == "SM1"


def test_history_records_each_applied_status_in_order() -> None:
    final, _ = apply_all([DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.SENT])

    assert [change.status for change in final.history] == [
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENT,
    ]


@given(st.lists(st.sampled_from(list(DeliveryStatus)), max_size=12))
def test_status_never_moves_backwards(reports: list[DeliveryStatus]) -> None:
    final, applied = apply_all(reports)

    ranks = [PROGRESS.index(status) for status in applied if status in PROGRESS]
    assert ranks == sorted(ranks)
    assert len(set(applied)) == len(applied)
    failures = [status for status in applied if status.is_failure]
    assert len(failures) <= 1
    if failures:
        assert applied[-1] is failures[0]
    if reports:
        assert final.delivery_status is not None
