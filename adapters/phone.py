"""Phone number parsing with Google's libphonenumber rules (the `phonenumbers` package)."""

import phonenumbers

from domain.errors import InvalidPhoneNumber
from domain.phone import PhoneNumber, mask_phone

WHATSAPP_PREFIX = "whatsapp:"


def check_region(region: str) -> str:
    """Return `region` upper-cased, or raise `ValueError` if libphonenumber does not know it."""
    upper = region.strip().upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"unknown region {region!r}: use an ISO 3166-1 alpha-2 code such as EC, GB or US"
        )
    return upper


_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
}


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


class PhonenumbersParser:
    """Reads E.164 numbers as they are and national numbers in a default region."""

    def __init__(self, default_region: str | None) -> None:
        # Without a default region only international (E.164) input can be read.
        self._default_region = check_region(default_region) if default_region else None

    def parse(self, raw: str) -> PhoneNumber:
        text = raw.strip()
        # Upstream services sometimes pass Twilio's channel address instead of a number.
        if text.lower().startswith(WHATSAPP_PREFIX):
            text = text[len(WHATSAPP_PREFIX) :].strip()
        try:
            parsed = phonenumbers.parse(text, self._default_region)
        except phonenumbers.NumberParseException as error:
            raise InvalidPhoneNumber(
                f"invalid phone number {mask_phone(text)}: "
                f"{_PARSE_ERRORS.get(error.error_type, 'not a phone number')}; "
                f"{self._hint()}"
            ) from error
        # Possible, not valid: the validity ranges lag behind new number blocks and leave
        # out reserved ranges such as the UK's 07700 900xxx, and Twilio rejects with 21211
        # a number that does not exist anyway.
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
            raise InvalidPhoneNumber(
                f"invalid phone number {mask_phone(text)}: "
                f"{_REASONS.get(reason, 'not a possible number')}; {self._hint()}"
            )
        return PhoneNumber(
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
            region=phonenumbers.region_code_for_number(parsed),
        )

    def _hint(self) -> str:
        if self._default_region is None:
            return (
                "send E.164 (+ and country code), or set DEFAULT_REGION to accept national numbers"
            )
        return (
            f"send E.164 (+ and country code) or a national number of region {self._default_region}"
        )
