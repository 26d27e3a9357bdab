"""Masking of phone numbers before they reach a log message."""

from __future__ import annotations

VISIBLE_DIGITS = 4


def mask_address(address: str) -> str:
    """Return `address` with all but its last four characters replaced by '*'.

    A channel prefix such as `whatsapp:` and a leading '+' stay visible, so
    'whatsapp:+14155550100' becomes 'whatsapp:+*******0100'.
    """
    prefix, separator, number = address.rpartition(":")
    head = prefix + separator
    if number.startswith("+"):
        head += "+"
        number = number[1:]
    hidden = max(len(number) - VISIBLE_DIGITS, 0)
    return head + "*" * hidden + number[hidden:]
