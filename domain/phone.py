"""E.164 phone numbers and their masked form for logs and events."""

import re
from dataclasses import dataclass, field

from domain.errors import InvalidPhoneNumber

# E.164 allows at most 15 digits after the plus sign, and no country code starts with 0.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A phone number in E.164 form, for example `+593991234567`."""

    e164: str
    # ISO 3166-1 alpha-2 region of the number when the parser determined it, such as "EC".
    region: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _E164.fullmatch(self.e164):
            raise InvalidPhoneNumber(
                f"invalid E.164 phone number {mask_phone(self.e164)!r}: "
                "expected '+' and 7 to 15 digits"
            )

    def masked(self) -> str:
        """Return the number with all but the first four and last three characters hidden."""
        return mask_phone(self.e164)

    def __str__(self) -> str:
        return self.e164


def mask_phone(raw: str) -> str:
    """Hide the middle of a phone-like string, so logs never carry a full number.

    `+593991234567` becomes `+593******567`. Strings of eight characters or fewer are
    hidden whole except the last two, which still lets an operator tell numbers apart.
    """
    if len(raw) <= 8:
        return "*" * max(len(raw) - 2, 0) + raw[-2:]
    return raw[:4] + "*" * (len(raw) - 7) + raw[-3:]
