"""Checks the `X-Twilio-Signature` of status callbacks against the public webhook URL."""

from collections.abc import Sequence

from multidict import MultiDict
from twilio.request_validator import RequestValidator


class TwilioSignatureValidator:
    """Validates callbacks as Twilio signed them: over the URL Twilio called, not ours.

    Behind a proxy the app receives requests on another scheme, host or port than
    Twilio used, so the URL is rebuilt from the configured public base URL plus the
    path and query the app received.
    """

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._public_base_url = public_base_url.rstrip("/")

    def public_url(self, path: str, query: str) -> str:
        url = self._public_base_url + path
        return f"{url}?{query}" if query else url

    def is_valid(
        self,
        path: str,
        query: str,
        fields: Sequence[tuple[str, str]],
        signature: str | None,
    ) -> bool:
        """Return True when `signature` matches the form `fields` posted to `path?query`.

        Repeated form keys are kept: Twilio signs every value of a key.
        """
        if not signature:
            return False
        url = self.public_url(path, query)
        return bool(self._validator.validate(url, MultiDict(fields), signature))
