"""Validation of "create a Message" parameters, raising the error code Twilio returns.

Checks run in this order, and the first failure wins:

| check                                                        | code  |
|--------------------------------------------------------------|-------|
| `To` missing or blank                                        | 21604 |
| `From` missing or blank (Messaging Services are not emulated)| 21603 |
| `Body` missing with no `MediaUrl` and no `ContentSid`        | 21602 |
| `Body` longer than 1600 characters                           | 21617 |
| `To` neither `whatsapp:+E164` nor `+E164`                    | 21211 |
| `To` and `From` on different channels                        | 21910 |
| WhatsApp `From` other than the configured sender             | 63007 |
| SMS `From` other than the configured sender                  | 21606 |
| `StatusCallback` not an http(s) URL with a valid hostname    | 21609 |

NOTE: Twilio does not document the order in which it checks parameters. This order
reports missing parameters before malformed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from twilio_emulator.config import E164_PATTERN, WHATSAPP_PREFIX, EmulatorConfig
from twilio_emulator.errors import TwilioApiError

Channel = Literal["whatsapp", "sms"]

MAX_BODY_CHARACTERS = 1600
MAX_STATUS_CALLBACK_LENGTH = 4000


@dataclass(frozen=True, slots=True)
class Address:
    """A `To` or `From` value split into its channel and its E.164 number."""

    channel: Channel
    number: str

    def __str__(self) -> str:
        if self.channel == "whatsapp":
            return WHATSAPP_PREFIX + self.number
        return self.number


@dataclass(frozen=True, slots=True)
class MessageRequest:
    """The parameters of one valid "create a Message" request."""

    to: Address
    from_: Address
    body: str
    media_urls: tuple[str, ...]
    content_sid: str | None
    status_callback: str | None


def channel_of(address: str) -> Channel:
    """Return the channel that the address prefix selects, `sms` when it has none."""
    return "whatsapp" if address.startswith(WHATSAPP_PREFIX) else "sms"


def parse_address(address: str) -> Address | None:
    """Split `whatsapp:+E164` or `+E164` into an Address, or return None for anything else."""
    channel = channel_of(address)
    number = address[len(WHATSAPP_PREFIX) :] if channel == "whatsapp" else address
    if not E164_PATTERN.fullmatch(number):
        return None
    return Address(channel=channel, number=number)


def body_length(body: str) -> int:
    """Return the body length in UTF-16 code units, so an emoji counts as two characters.

    NOTE: Twilio documents only that non-GSM characters such as emoji may count as more
    than one character toward the 1600 limit, so UTF-16 code units are an approximation.
    """
    return len(body.encode("utf-16-le")) // 2


def is_valid_status_callback(url: str) -> bool:
    """Return whether `url` is a fully qualified http(s) URL whose hostname has no underscore.

    Loopback hosts are accepted, unlike on Twilio, because the emulator posts to
    receivers running on the same machine.
    """
    if len(url) > MAX_STATUS_CALLBACK_LENGTH or any(character.isspace() for character in url):
        return False
    try:
        parts = urlsplit(url)
        # Reading .port raises ValueError for a port that is not a number or out of range.
        _ = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    hostname = parts.hostname or ""
    return bool(hostname) and "_" not in hostname


def first_value(form: Mapping[str, Sequence[str]], name: str, *, strip: bool = True) -> str:
    """Return the first value of form field `name`, or '' when the field is absent.

    With `strip`, surrounding whitespace is removed, so a blank value reads as absent.
    """
    values = form.get(name) or ()
    if not values:
        return ""
    return values[0].strip() if strip else values[0]


def validate_create_request(
    form: Mapping[str, Sequence[str]], config: EmulatorConfig
) -> MessageRequest:
    """Validate the form fields of a "create a Message" request.

    `form` maps each field name to all of its values, since Twilio repeats `MediaUrl`.
    Raises TwilioApiError with the code that Twilio returns for the first failed check.
    """
    to_value = first_value(form, "To")
    from_value = first_value(form, "From")
    # The body is kept exactly as sent, and only its blankness is checked.
    body = first_value(form, "Body", strip=False)
    media_urls = tuple(url for url in form.get("MediaUrl") or () if url.strip())
    content_sid = first_value(form, "ContentSid") or None
    status_callback = first_value(form, "StatusCallback") or None

    if not to_value:
        raise TwilioApiError(21604, "A 'To' phone number is required: pass To=whatsapp:+E164.")
    if not from_value:
        raise TwilioApiError(
            21603,
            "A 'From' phone number is required: pass From=whatsapp:"
            f"{config.whatsapp_sender}. The emulator does not emulate Messaging Services.",
        )
    if not body.strip() and not media_urls and content_sid is None:
        raise TwilioApiError(21602, "Message body is required: pass Body, MediaUrl or ContentSid.")
    if body_length(body) > MAX_BODY_CHARACTERS:
        raise TwilioApiError(
            21617,
            f"The message body has {body_length(body)} characters and exceeds the "
            f"{MAX_BODY_CHARACTERS} character limit: shorten Body.",
        )

    to_address = parse_address(to_value)
    if to_address is None:
        raise TwilioApiError(
            21211,
            f"The 'To' number {to_value} is not a valid phone number: "
            "use whatsapp:+E164 for WhatsApp or +E164 for SMS.",
        )
    from_channel = channel_of(from_value)
    if from_channel != to_address.channel:
        raise TwilioApiError(
            21910,
            f"Invalid 'From' and 'To' pair: From {from_value} is {from_channel} and To "
            f"{to_value} is {to_address.channel}. Use the same channel prefix on both.",
        )
    from_address = parse_address(from_value)
    if from_address is None or from_address.number != config.whatsapp_sender:
        if from_channel == "whatsapp":
            raise TwilioApiError(
                63007,
                f"Twilio could not find a Channel with the 'From' address {from_value}: "
                f"send from whatsapp:{config.whatsapp_sender}.",
            )
        raise TwilioApiError(
            21606,
            f"The 'From' number {from_value} is not a message-capable phone number of this "
            f"account: send from {config.whatsapp_sender}.",
        )

    if status_callback is not None and not is_valid_status_callback(status_callback):
        raise TwilioApiError(
            21609,
            f"The StatusCallback URL {status_callback} is not valid: pass a fully qualified "
            "http:// or https:// URL whose hostname has no underscore.",
        )

    return MessageRequest(
        to=to_address,
        from_=from_address,
        body=body,
        media_urls=media_urls,
        content_sid=content_sid,
        status_callback=status_callback,
    )
