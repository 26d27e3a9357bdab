"""Retrying a call with tenacity, entering the retry loop only once the call has failed."""

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying

T = TypeVar("T")


async def call_with_retries(
    call: Callable[[], Awaitable[T]], retrying: Callable[[], AsyncRetrying]
) -> T:
    """Await `call()`, and once it raises, retry it as the loop from `retrying()` decides.

    Almost every call succeeds at once, and building tenacity's loop around each one
    costs more CPU than many of the calls themselves. The first failure becomes the
    loop's first attempt, so its retry test, attempt count, waits and logging apply to
    it as if the loop had made the call, and a time limit counts from the first call.
    """
    started = time.monotonic()
    try:
        return await call()
    except Exception as error:
        failure: Exception | None = error
    async for attempt in retrying():
        with attempt:
            if failure is not None:
                # tenacity measures its time limit from this start, with this clock.
                attempt.retry_state.start_time = started
                error, failure = failure, None
                raise error
            return await call()
    raise AssertionError("tenacity ended its loop without a result or an error")
