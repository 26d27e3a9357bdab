"""Domain errors, each named after the rule the input broke."""


class DomainError(Exception):
    """Base class of every error the verification rules raise."""


class InvalidPhoneNumber(DomainError):
    """A phone number that cannot be read as a valid E.164 number."""


class InvalidVerificationId(DomainError):
    """A verification id that is empty, too long or contains unsafe characters."""


class InvalidCode(DomainError):
    """A code that does not fit the configured length or alphabet."""
