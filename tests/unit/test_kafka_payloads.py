"""Kafka payloads: both request forms, and a precise error for everything else."""

import pytest

from adapters.kafka.payloads import MAX_PAYLOAD_BYTES, InvalidPayload, parse_request
from application.request_verification import VerificationRequest


@pytest.mark.parametrize(
    ("value", "request_"),
    [
        (b'{"Id": "u1", "Phone": "+593991234567"}', VerificationRequest("u1", "+593991234567")),
        (
            b'{"verification_id": "u2", "phone": "0991234567", "locale": "es"}',
            VerificationRequest("u2", "0991234567", "es"),
        ),
        (b'{"Id": " u3 ", "Phone": "1", "Extra": {"x": 1}}', VerificationRequest("u3", "1")),
        (b'{"Id": 42, "Phone": "1"}', VerificationRequest("42", "1")),
    ],
)
def test_parse_accepts_both_forms(value: bytes, request_: VerificationRequest) -> None:
    assert parse_request(value) == request_


@pytest.mark.parametrize(
    ("value", "message", "verification_id"),
    [
        (None, "empty message", None),
        (b"not json", "not JSON", None),
        (b"\xff\xfe", "not UTF-8", None),
        (b"[1, 2]", "JSON list", None),
        (b'{"Id": "u1"}', "Phone is missing", "u1"),
        (b'{"Phone": "+593991234567"}', "Id is missing", None),
        (b'{"Id": true, "Phone": "1"}', "Id: Input should be", None),
        (b'{"Id": "", "Phone": "1"}', "Id: String should have at least 1", None),
        (b'{"Id": "u1", "Phone": 5}', "Phone: Input should be a valid string", "u1"),
    ],
)
def test_parse_rejects_with_reason(
    value: bytes | None, message: str, verification_id: str | None
) -> None:
    with pytest.raises(InvalidPayload, match=message) as caught:
        parse_request(value)

    assert caught.value.verification_id == verification_id


def test_parse_rejects_oversized_message() -> None:
    value = b'{"Id": "u1", "Phone": "' + b"1" * MAX_PAYLOAD_BYTES + b'"}'

    with pytest.raises(InvalidPayload, match="byte limit"):
        parse_request(value)
