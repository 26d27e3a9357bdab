"""JSON rendering of the Message resource, in the shape of Twilio's 2010-04-01 API."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any

from twilio_emulator.state import MessageRecord

API_VERSION = "2010-04-01"


def rfc2822(moment: datetime | None) -> str | None:
    """Format a UTC time as Twilio does, e.g. 'Thu, 30 Jul 2015 20:12:31 +0000'."""
    if moment is None:
        return None
    return format_datetime(moment)


def message_uri(account_sid: str, message_sid: str) -> str:
    """Return the path of the Message resource, as Twilio reports it in `uri`."""
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message_sid}.json"


def render_message(record: MessageRecord) -> dict[str, Any]:
    """Return the Message resource JSON for `record`."""
    base_uri = message_uri(record.account_sid, record.sid).removesuffix(".json")
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "body": record.body,
        "date_created": rfc2822(record.received_at),
        "date_sent": rfc2822(record.date_sent),
        "date_updated": rfc2822(record.date_updated),
        "direction": "outbound-api",
        "error_code": record.error_code,
        "error_message": record.error_message,
        "from": record.from_,
        "messaging_service_sid": None,
        "num_media": str(record.num_media),
        # NOTE: always one segment, which is right for WhatsApp. On Twilio a long SMS body
        # takes several segments.
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": record.sid,
        "status": record.status,
        "subresource_uris": {
            "media": f"{base_uri}/Media.json",
            "feedback": f"{base_uri}/Feedback.json",
        },
        "to": record.to,
        "uri": message_uri(record.account_sid, record.sid),
    }
