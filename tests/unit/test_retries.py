"""call_with_retries: tenacity's loop, built only once a call has failed."""

import asyncio

import pytest
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_none,
)

from adapters.kafka.retries import call_with_retries


class Flaky:
    """Fails with each of `errors` in turn, then returns the number of calls."""

    def __init__(self, *errors: Exception) -> None:
        self._errors = list(errors)
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self._errors:
            raise self._errors.pop(0)
        return self.calls


def retrying_on_lookup_error(attempts: list[int], max_attempts: int = 3) -> AsyncRetrying:
    def record(state: RetryCallState) -> None:
        attempts.append(state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception_type(LookupError),
        stop=stop_after_attempt(max_attempts),
        wait=wait_none(),
        before_sleep=record,
        reraise=True,
    )


async def test_success_never_builds_the_loop() -> None:
    def no_loop() -> AsyncRetrying:
        raise AssertionError("the retry loop was built for a call that succeeded")

    assert await call_with_retries(Flaky(), no_loop) == 1


async def test_first_failure_counts_as_the_loops_first_attempt() -> None:
    call = Flaky(KeyError("a"), KeyError("b"))
    attempts: list[int] = []

    result = await call_with_retries(call, lambda: retrying_on_lookup_error(attempts))

    assert result == 3
    assert attempts == [1, 2]


async def test_attempt_limit_includes_the_first_call() -> None:
    call = Flaky(KeyError("a"), KeyError("b"), KeyError("c"))
    attempts: list[int] = []

    with pytest.raises(KeyError, match="c"):
        await call_with_retries(call, lambda: retrying_on_lookup_error(attempts, 3))

    assert call.calls == 3


async def test_error_the_loop_does_not_retry_propagates_unchanged() -> None:
    error = ValueError("bad input")
    attempts: list[int] = []

    with pytest.raises(ValueError) as raised:
        await call_with_retries(Flaky(error), lambda: retrying_on_lookup_error(attempts))

    assert raised.value is error
    assert attempts == []


async def test_time_limit_counts_from_the_first_call() -> None:
    async def slow_failure() -> None:
        await asyncio.sleep(0.3)
        raise KeyError("slow")

    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await slow_failure()

    # The first call alone takes longer than the limit, so it is the only one.
    with pytest.raises(KeyError):
        await call_with_retries(
            counted,
            lambda: AsyncRetrying(
                retry=retry_if_exception_type(LookupError),
                stop=stop_after_delay(0.25),
                wait=wait_none(),
                reraise=True,
            ),
        )

    assert calls == 1
