"""Errors that ports raise, each marked retriable or not, so callers can decide to retry."""


class PortError(Exception):
    """Base class of errors raised by port implementations.

    `retriable` is True when the same call may succeed later (a timeout, an outage,
    a rate limit) and False when it cannot (bad input, bad credentials).
    """

    retriable: bool = False


class MessageRejected(PortError):
    """The messaging provider rejected the message for good."""

    retriable = False

    def __init__(self, detail: str, error_code: str | None = None) -> None:
        super().__init__(detail if error_code is None else f"{detail} (error {error_code})")
        self.detail = detail
        self.error_code = error_code


class ProviderUnavailable(PortError):
    """The messaging provider could not be reached or asked to try again later."""

    retriable = True

    def __init__(
        self,
        detail: str,
        error_code: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(detail if error_code is None else f"{detail} (error {error_code})")
        self.detail = detail
        self.error_code = error_code
        self.retry_after_seconds = retry_after_seconds


class StoreUnavailable(PortError):
    """The verification store could not be reached."""

    retriable = True


class VerificationNotFound(PortError):
    """No verification is stored under the id: never created, or past its retention."""

    retriable = False


class RequestInProgress(PortError):
    """Another worker has claimed this request and may still send it, so try again later."""

    retriable = True
