"""Twilio error codes known to the emulator and the JSON error body Twilio returns.

Twilio's REST API returns a failed request's error as a JSON body of the form
`{"code": int, "message": str, "more_info": url, "status": http_status}`, which the
`twilio` SDK turns into `TwilioRestException(status=..., code=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MORE_INFO_URL = "https://www.twilio.com/docs/errors/{code}"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One entry of Twilio's error dictionary: the code, its HTTP status and its title."""

    code: int
    http_status: int
    title: str


# Titles follow the headings of Twilio's error dictionary (twilio.com/docs/api/errors).
# The HTTP status applies when the REST API returns the code. The 30xxx and 63016 codes
# are delivery errors, which Twilio reports in status callbacks instead.
KNOWN_ERRORS: dict[int, ErrorCode] = {
    entry.code: entry
    for entry in (
        ErrorCode(20001, 400, "Invalid parameter"),
        ErrorCode(20003, 401, "Authenticate"),
        ErrorCode(20404, 404, "Not Found"),
        ErrorCode(20429, 429, "Too Many Requests"),
        ErrorCode(21211, 400, "Invalid 'To' Phone Number"),
        ErrorCode(21408, 400, "Permission to send an SMS has not been enabled for the region"),
        ErrorCode(21602, 400, "Message body is required"),
        ErrorCode(21603, 400, "'From' phone number is required to send a Message"),
        ErrorCode(21604, 400, "'To' phone number is required to send a Message"),
        ErrorCode(
            21606,
            400,
            "The 'From' phone number provided is not a valid message-capable Twilio phone number",
        ),
        ErrorCode(21609, 400, "Invalid 'StatusCallback'"),
        ErrorCode(21610, 400, "Attempt to send to unsubscribed recipient"),
        ErrorCode(21617, 400, "The concatenated message body exceeds the 1600 character limit"),
        ErrorCode(
            21910,
            400,
            "Invalid 'From' and 'To' pair. 'From' and 'To' should be of the same channel",
        ),
        ErrorCode(30003, 400, "Unreachable destination handset"),
        ErrorCode(30005, 400, "Unknown destination handset"),
        ErrorCode(30006, 400, "Landline or unreachable carrier"),
        ErrorCode(30007, 400, "Message filtered"),
        ErrorCode(30008, 400, "Unknown error"),
        ErrorCode(63003, 400, "Channel could not find To address"),
        ErrorCode(63007, 400, "Twilio could not find a Channel with the specified 'From' address"),
        ErrorCode(
            63016, 400, "Outside messaging window. For WhatsApp, use a Message Template instead"
        ),
    )
}


def describe_error(code: int) -> ErrorCode:
    """Return the dictionary entry for `code`, or a generic 400 entry for an unknown code."""
    known = KNOWN_ERRORS.get(code)
    if known is not None:
        return known
    return ErrorCode(code, 400, f"Twilio error {code}")


class TwilioApiError(Exception):
    """A REST API failure that the emulator returns as Twilio's JSON error body."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        http_status: int | None = None,
        retry_after_seconds: int | None = None,
    ):
        entry = describe_error(code)
        self.code = code
        self.message = message or entry.title
        self.http_status = http_status or entry.http_status
        # Sent as the Retry-After header, as Twilio does on some 429 and 503 responses.
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"{self.code}: {self.message}")

    def to_body(self) -> dict[str, Any]:
        """Return the JSON body Twilio sends for this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO_URL.format(code=self.code),
            "status": self.http_status,
        }
