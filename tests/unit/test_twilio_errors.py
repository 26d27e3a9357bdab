"""The Twilio error table: which errors are retried and which are final."""

import pytest
from twilio.base.exceptions import TwilioRestException

from adapters.twilio.errors import PERMANENT_CODES, RETRIABLE_CODES, classify
from application.errors import MessageRejected, ProviderUnavailable


def _error(status: int, code: int | None) -> TwilioRestException:
    return TwilioRestException(status, "https://api.twilio.test/Messages.json", "msg", code)


@pytest.mark.parametrize("code", sorted(PERMANENT_CODES))
def test_permanent_codes_are_rejections(code: int) -> None:
    error = classify(_error(400, code))

    assert isinstance(error, MessageRejected)
    assert error.retriable is False
    assert error.error_code == str(code)


@pytest.mark.parametrize("code", sorted(RETRIABLE_CODES))
def test_retriable_codes_are_unavailable(code: int) -> None:
    error = classify(_error(429 if code == 20429 else 503, code))

    assert isinstance(error, ProviderUnavailable)
    assert error.retriable is True


@pytest.mark.parametrize(
    ("status", "retriable"), [(500, True), (502, True), (429, True), (400, False), (404, False)]
)
def test_unknown_codes_follow_http_status(status: int, retriable: bool) -> None:
    assert classify(_error(status, 99999)).retriable is retriable


def test_bad_credentials_name_the_settings() -> None:
    error = classify(_error(401, 20003))

    assert "TWILIO_ACCOUNT_SID" in str(error)
    assert "TWILIO_AUTH_TOKEN" in str(error)
