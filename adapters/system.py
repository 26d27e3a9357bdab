"""Clock and code generator backed by the operating system."""

from datetime import UTC, datetime

from domain.code import CodeAlphabet, VerificationCode, check_code_length


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SecretsCodeGenerator:
    """Draws codes from the operating system's secure random source."""

    def __init__(self, length: int, alphabet: CodeAlphabet = CodeAlphabet.NUMERIC) -> None:
        check_code_length(length)
        self._length = length
        self._alphabet = alphabet

    def generate(self) -> VerificationCode:
        return VerificationCode.generate(self._length, self._alphabet)
