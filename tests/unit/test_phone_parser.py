"""Phone parsing with libphonenumber: the forms upstream services send."""

import pytest

from adapters.phone import PhonenumbersParser, check_region
from domain.errors import InvalidPhoneNumber


@pytest.mark.parametrize(
    ("region", "raw", "e164"),
    [
        ("KW", "50001234", "+96550001234"),
        ("GB", "07700 900123", "+447700900123"),
        ("GB", "+44 (0) 7700 900123", "+447700900123"),
        ("US", "whatsapp:+12025550143", "+12025550143"),
        ("EC", "0991234567", "+593991234567"),
        ("EC", "+593991234567", "+593991234567"),
        (None, "+593991234567", "+593991234567"),
    ],
)
def test_parser_returns_e164(region: str | None, raw: str, e164: str) -> None:
    assert PhonenumbersParser(region).parse(raw).e164 == e164


@pytest.mark.parametrize(
    ("region", "raw", "reason"),
    [
        ("US", "12345", "too short"),
        ("US", "abc", "not a phone number"),
        ("US", "", "not a phone number"),
        ("US", "+999123456789", "unknown country code"),
        ("US", "123456789012345678", "too long"),
        (None, "0991234567", "set DEFAULT_REGION"),
    ],
)
def test_parser_rejects_impossible_numbers(region: str | None, raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=reason):
        PhonenumbersParser(region).parse(raw)


def test_rejection_message_masks_number() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        PhonenumbersParser("US").parse("+999123456789")

    assert "+999123456789" not in str(caught.value)


def test_unknown_region_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown region 'XX'"):
        check_region("XX")
