"""WhatsApp channel addresses as Twilio writes them (`whatsapp:+14155550100`)."""

from domain.phone import PhoneNumber

WHATSAPP_PREFIX = "whatsapp:"


def whatsapp_address(number: PhoneNumber | str) -> str:
    """Return `number` with the `whatsapp:` prefix exactly once."""
    text = str(number).strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :].strip()
    return WHATSAPP_PREFIX + text
