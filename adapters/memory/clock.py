"""Controllable clock and predictable code generator for tests."""

from datetime import UTC, datetime, timedelta

from domain.code import VerificationCode


class FakeClock:
    """A clock that moves only when `advance` is called."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class FixedCodeGenerator:
    """Hands out the given codes in order, repeating the last one."""

    def __init__(self, *codes: str) -> None:
        if not codes:
            raise ValueError("FixedCodeGenerator needs at least one code")
        self._codes = list(codes)

    def generate(self) -> VerificationCode:
        if len(self._codes) > 1:
            return VerificationCode(self._codes.pop(0))
        return VerificationCode(self._codes[0])
