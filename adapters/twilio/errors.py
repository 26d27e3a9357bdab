"""Classification of Twilio errors into retriable and permanent, in one table."""

from twilio.base.exceptions import TwilioRestException

from application.errors import MessageRejected, PortError, ProviderUnavailable

# Twilio error codes whose request can succeed if sent again later. Source: Twilio's
# error dictionary, https://www.twilio.com/docs/api/errors.
RETRIABLE_CODES: dict[int, str] = {
    20429: "too many requests",
    20500: "internal server error",
    20503: "service unavailable",
}

# Codes that cannot succeed on retry, with the meaning shown to the requester.
PERMANENT_CODES: dict[int, str] = {
    20003: "authentication failed: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
    20404: "resource not found: check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL",
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled on the Twilio account",
    21602: "message body is required",
    21603: "'From' phone number is required",
    21604: "'To' phone number is required",
    21606: "the 'From' number cannot send this kind of message",
    21610: "the recipient has unsubscribed (replied STOP)",
    21612: "Twilio cannot route from this 'From' to this 'To'",
    21614: "'To' is not a valid mobile number",
    21617: "message body exceeds 1600 characters",
    21910: "'From' and 'To' are on different channels",
    63007: "no WhatsApp sender matches the 'From' address: check TWILIO_PHONE_NUMBER",
    63016: "outside the WhatsApp 24-hour window: a pre-approved template is required",
}


# Codes that status callbacks carry for failed or undelivered messages. They never
# come from the API call, so they are not part of the retry classification.
DELIVERY_ERROR_MEANINGS: dict[int, str] = {
    30003: "unreachable destination handset",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
    30008: "unknown delivery error",
    63003: "the recipient is not reachable on WhatsApp",
    63016: "outside the WhatsApp 24-hour window: a pre-approved template is required",
    63024: "invalid message recipient",
}


def classify(error: TwilioRestException, retry_after_seconds: float | None = None) -> PortError:
    """Turn a Twilio API error into `ProviderUnavailable` or `MessageRejected`.

    Unknown codes follow the HTTP status: 429 and 5xx are retried, other 4xx are not.
    `retry_after_seconds`, from the response's `Retry-After`, goes with a retriable error.
    """
    code = error.code
    error_code = str(code) if code is not None else None
    if code in RETRIABLE_CODES or error.status == 429 or error.status >= 500:
        meaning = RETRIABLE_CODES.get(code or 0, f"HTTP {error.status}")
        return ProviderUnavailable(
            f"Twilio is unavailable: {meaning}", error_code, retry_after_seconds
        )
    meaning = PERMANENT_CODES.get(code or 0, error.msg or f"HTTP {error.status}")
    return MessageRejected(f"Twilio rejected the message: {meaning}", error_code)
