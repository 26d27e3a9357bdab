"""CheckVerification against the fakes: approval, attempts, expiry, consumption."""

import pytest
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.clock import FixedCodeGenerator
from application.check_verification import CheckResult
from application.request_verification import VerificationRequest
from domain.events import CheckApproved, CheckFailed, CheckFailureReason
from domain.verification import VerificationStatus
from tests.unit.conftest import CODE, Fakes

WRONG = "111111"


async def _send(fakes: Fakes, verification_id: str = "user-1") -> None:
    await fakes.container.request_verification().execute(
        VerificationRequest(verification_id, "+593991234567"), "owner-1"
    )
    fakes.notifier.clear()


async def _check(fakes: Fakes, code: str, verification_id: str = "user-1") -> CheckResult:
    outcome = await fakes.container.check_verification().execute(verification_id, code)
    return outcome.result


async def test_right_code_is_approved_once(fakes: Fakes) -> None:
    await _send(fakes)

    first = await _check(fakes, CODE)
    second = await _check(fakes, CODE)

    assert first is CheckResult.APPROVED
    assert second is CheckResult.EXPIRED
    assert isinstance(fakes.notifier.events[0], CheckApproved)


async def test_code_with_separators_is_approved(fakes: Fakes) -> None:
    await _send(fakes)

    assert await _check(fakes, f" {CODE[:3]}-{CODE[3:]} ") is CheckResult.APPROVED


async def test_wrong_code_reports_attempts_remaining(fakes: Fakes) -> None:
    await _send(fakes)
    use_case = fakes.container.check_verification()

    outcomes = [await use_case.execute("user-1", WRONG) for _ in range(3)]

    assert [outcome.result for outcome in outcomes] == [CheckResult.INCORRECT] * 3
    assert [outcome.attempts_remaining for outcome in outcomes] == [4, 3, 2]
    [event, *_] = fakes.notifier.events
    assert isinstance(event, CheckFailed)
    assert event.reason is CheckFailureReason.INCORRECT


async def test_right_code_after_five_wrong_is_rejected(fakes: Fakes) -> None:
    await _send(fakes)
    for _ in range(5):
        assert await _check(fakes, WRONG) is CheckResult.INCORRECT

    outcome = await fakes.container.check_verification().execute("user-1", CODE)

    assert outcome.result is CheckResult.TOO_MANY_ATTEMPTS
    assert outcome.attempts_remaining == 0
    view = await fakes.container.manage_verification().describe("user-1")
    assert view is not None
    assert view.status is VerificationStatus.FAILED
    assert view.attempts_used == 5


async def test_waiting_does_not_reset_attempts(fakes: Fakes) -> None:
    await _send(fakes)
    for _ in range(5):
        await _check(fakes, WRONG)

    fakes.clock.advance(120)

    assert await _check(fakes, CODE) is CheckResult.TOO_MANY_ATTEMPTS


async def test_code_expires_at_ttl(fakes: Fakes) -> None:
    await _send(fakes)
    fakes.clock.advance(299)
    assert (await fakes.container.manage_verification().describe("user-1")) is not None

    fakes.clock.advance(1)

    assert await _check(fakes, CODE) is CheckResult.EXPIRED
    view = await fakes.container.manage_verification().describe("user-1")
    assert view is not None
    assert view.status is VerificationStatus.EXPIRED


async def test_unknown_verification_is_not_found(fakes: Fakes) -> None:
    assert await _check(fakes, CODE, "nobody") is CheckResult.NOT_FOUND
    [event] = fakes.notifier.events
    assert isinstance(event, CheckFailed)
    assert event.reason is CheckFailureReason.NOT_FOUND


async def test_canceled_verification_rejects_right_code(fakes: Fakes) -> None:
    await _send(fakes)

    await fakes.container.manage_verification().cancel("user-1")

    assert await _check(fakes, CODE) is CheckResult.EXPIRED


async def test_resent_code_replaces_old_code(fakes: Fakes) -> None:
    await _send(fakes)
    fakes.clock.advance(31)
    await fakes.container.request_verification().execute(
        VerificationRequest("user-1", "+593991234567"), "owner-2"
    )

    assert await _check(fakes, CODE) is CheckResult.INCORRECT
    assert await _check(fakes, "480267") is CheckResult.APPROVED


async def test_resend_resets_attempts(fakes: Fakes) -> None:
    await _send(fakes)
    for _ in range(5):
        await _check(fakes, WRONG)
    fakes.clock.advance(31)

    await fakes.container.request_verification().execute(
        VerificationRequest("user-1", "+593991234567"), "owner-2"
    )

    assert await _check(fakes, "480267") is CheckResult.APPROVED


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    checks=st.lists(
        st.one_of(st.just(CODE), st.text(alphabet="0123456789", min_size=1, max_size=8)),
        max_size=12,
    )
)
async def test_no_sequence_approves_wrong_code_or_twice(fakes: Fakes, checks: list[str]) -> None:
    verification_id = f"prop-{fakes.clock.now().timestamp()}"
    fakes.clock.advance(3600 * 24)
    # Every example sends a fresh verification whose code must be CODE.
    fakes.container.codes.override(providers.Object(FixedCodeGenerator(CODE)))
    fakes.container.request_verification.reset()
    await _send(fakes, verification_id)
    approvals = 0
    wrong_seen = 0

    for code in checks:
        result = await _check(fakes, code, verification_id)
        if result is CheckResult.APPROVED:
            approvals += 1
            assert code == CODE
            assert wrong_seen < 5
        elif code != CODE:
            wrong_seen += 1

    assert approvals <= 1
    assert approvals == (1 if CODE in checks and _approved_in_time(checks) else 0)


def _approved_in_time(checks: list[str]) -> bool:
    """True when the right code came before the fifth wrong one."""
    for index, code in enumerate(checks):
        if code == CODE:
            return index < 5
    return False


@pytest.mark.parametrize("settings_overrides", [{"MAX_CHECK_ATTEMPTS": 2}])
async def test_attempt_limit_follows_setting(fakes: Fakes) -> None:
    await _send(fakes)

    results = [await _check(fakes, WRONG) for _ in range(2)]

    assert results == [CheckResult.INCORRECT, CheckResult.INCORRECT]
    assert await _check(fakes, CODE) is CheckResult.TOO_MANY_ATTEMPTS
