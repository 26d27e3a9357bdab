"""One-time codes: generation rules and the keyed digest that is stored instead of the code."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import InvalidCode

MIN_CODE_LENGTH = 4
MAX_CODE_LENGTH = 10


class CodeAlphabet(StrEnum):
    """The characters a code is drawn from."""

    NUMERIC = "numeric"
    # Upper-case letters and digits without the look-alikes 0/O, 1/I/L, 2/Z, 5/S and 8/B,
    # so a person can copy the code from a phone screen without guessing.
    ALPHANUMERIC = "alphanumeric"

    @property
    def characters(self) -> str:
        if self is CodeAlphabet.NUMERIC:
            return "0123456789"
        return "34679ACDEFGHJKMNPQRTUVWXY"


@dataclass(frozen=True, slots=True)
class VerificationCode:
    """A one-time code as sent to the person.

    It is never logged, and stored in plain text only under the opt-in legacy contract.
    """

    value: str

    def __repr__(self) -> str:
        return "VerificationCode(<redacted>)"

    @classmethod
    def generate(cls, length: int, alphabet: CodeAlphabet) -> "VerificationCode":
        """Draw a code of `length` characters from `alphabet` with the `secrets` module."""
        check_code_length(length)
        characters = alphabet.characters
        return cls("".join(secrets.choice(characters) for _ in range(length)))


def check_code_length(length: int) -> None:
    """Raise `InvalidCode` unless `length` is within the supported range."""
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise InvalidCode(
            f"invalid code length {length}: use {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH}"
        )


class CodeDigester:
    """Computes and compares HMAC-SHA256 digests of codes, keyed with a server secret.

    A keyed digest means a copy of the store alone is not enough to brute-force the
    short code space offline.
    """

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the code secret must not be empty")
        self._secret = secret

    def digest(self, code: VerificationCode, verification_id: str) -> str:
        """Return the hex digest of `code`, bound to `verification_id`.

        Binding the id means a digest copied to another verification does not match there.
        """
        message = f"{verification_id}\x00{code.value.upper()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def matches(self, code: VerificationCode, verification_id: str, digest: str) -> bool:
        """Compare in constant time, so response timing reveals nothing about the digest."""
        return hmac.compare_digest(self.digest(code, verification_id), digest)
