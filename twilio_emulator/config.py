"""Settings of the Twilio API emulator, validated once when they are built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

WHATSAPP_PREFIX = "whatsapp:"
E164_PATTERN = re.compile(r"^\+[1-9][0-9]{1,14}$")
DEFAULT_CALLBACK_STATUSES: tuple[str, ...] = ("sent", "delivered", "read")


class ConfigError(ValueError):
    """Raised when an emulator setting is missing or malformed."""


def normalize_sender(sender: str) -> str:
    """Return the sender as a bare E.164 number, accepting an optional whatsapp: prefix.

    Raises ConfigError when the rest is not an E.164 number.
    """
    number = sender.strip()
    if number.startswith(WHATSAPP_PREFIX):
        number = number[len(WHATSAPP_PREFIX) :]
    if not E164_PATTERN.fullmatch(number):
        raise ConfigError(
            f"invalid WhatsApp sender {sender!r}: expected an E.164 number such as "
            "+14155550100, with or without the whatsapp: prefix"
        )
    return number


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Settings of one emulator instance.

    `whatsapp_sender` is stored as a bare E.164 number. The emulator accepts it as
    `From` in both forms: `whatsapp:+E164` for WhatsApp and `+E164` for SMS.
    """

    account_sid: str
    auth_token: str = field(repr=False)
    whatsapp_sender: str
    host: str = "127.0.0.1"
    # 0 lets the operating system pick a free port, which in-process tests rely on.
    port: int = 0
    callback_delay_ms: int = 20
    response_delay_ms: int = 0
    callback_timeout_seconds: float = 5.0
    default_callback_statuses: tuple[str, ...] = DEFAULT_CALLBACK_STATUSES

    def __post_init__(self) -> None:
        if not self.account_sid.startswith("AC"):
            raise ConfigError(
                f"invalid account SID {self.account_sid!r}: Twilio account SIDs start with AC"
            )
        if not self.auth_token:
            raise ConfigError("missing auth token: pass --auth-token or set TWILIO_AUTH_TOKEN")
        object.__setattr__(self, "whatsapp_sender", normalize_sender(self.whatsapp_sender))
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"invalid port {self.port}: expected 0 to 65535")
        if self.callback_delay_ms < 0:
            raise ConfigError(
                f"invalid callback delay {self.callback_delay_ms} ms: expected 0 or more"
            )
        if self.response_delay_ms < 0:
            raise ConfigError(
                f"invalid response delay {self.response_delay_ms} ms: expected 0 or more"
            )
        if self.callback_timeout_seconds <= 0:
            raise ConfigError(
                f"invalid callback timeout {self.callback_timeout_seconds} s: "
                "expected a positive number"
            )
