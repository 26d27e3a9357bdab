"""Phone numbers, verification ids and code digests."""

import pytest

from domain.code import CodeAlphabet, CodeDigester, VerificationCode
from domain.errors import InvalidCode, InvalidPhoneNumber, InvalidVerificationId
from domain.phone import PhoneNumber, mask_phone
from domain.verification import check_verification_id


@pytest.mark.parametrize("raw", ["+593991234567", "+12025550143", "+4915112345678"])
def test_phone_accepts_e164(raw: str) -> None:
    assert PhoneNumber(raw).e164 == raw


@pytest.mark.parametrize("raw", ["593991234567", "+0123456789", "+1234", "+1234567890123456", ""])
def test_phone_rejects_non_e164(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=r"E\.164"):
        PhoneNumber(raw)


def test_mask_hides_middle_digits() -> None:
    assert mask_phone("+593991234567") == "+593******567"
    assert PhoneNumber("+593991234567").masked() == "+593******567"


@pytest.mark.parametrize("raw", ["user-1", "42", "a.b:c@d~e+f_g", "x" * 128])
def test_verification_id_accepts_safe_ids(raw: str) -> None:
    assert check_verification_id(raw) == raw


@pytest.mark.parametrize("raw", ["", " x", "a b", "{slot}", "a/b", "x" * 129, "-lead"])
def test_verification_id_rejects_unsafe_ids(raw: str) -> None:
    with pytest.raises(InvalidVerificationId):
        check_verification_id(raw)


@pytest.mark.parametrize("length", [4, 6, 10])
def test_numeric_code_has_requested_length(length: int) -> None:
    code = VerificationCode.generate(length, CodeAlphabet.NUMERIC)

    assert len(code.value) == length
    assert code.value.isdigit()


def test_alphanumeric_code_avoids_look_alikes() -> None:
    codes = {VerificationCode.generate(10, CodeAlphabet.ALPHANUMERIC).value for _ in range(200)}

    characters = set("".join(codes))
    assert characters <= set(CodeAlphabet.ALPHANUMERIC.characters)
    assert not characters & set("0O1IL2Z5S8B")


@pytest.mark.parametrize("length", [3, 11])
def test_code_length_outside_range_is_rejected(length: int) -> None:
    with pytest.raises(InvalidCode, match="4 to 10"):
        VerificationCode.generate(length, CodeAlphabet.NUMERIC)


def test_code_repr_hides_value() -> None:
    assert "123456" not in repr(VerificationCode("123456"))


def test_digest_matches_only_same_code_and_id() -> None:
    digester = CodeDigester(b"secret-for-tests")
    digest = digester.digest(VerificationCode("123456"), "user-1")

    assert digester.matches(VerificationCode("123456"), "user-1", digest)
    assert not digester.matches(VerificationCode("123457"), "user-1", digest)
    assert not digester.matches(VerificationCode("123456"), "user-2", digest)
    assert not CodeDigester(b"other-secret").matches(VerificationCode("123456"), "user-1", digest)
    assert "123456" not in digest
