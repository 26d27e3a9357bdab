"""Turns one consumed Kafka message into a RequestVerification call, with bounded retries."""

import logging
import uuid
from dataclasses import dataclass

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.payloads import InvalidPayload, parse_request
from application.errors import ProviderUnavailable, RequestInProgress, StoreUnavailable
from application.request_verification import RequestVerification, VerificationRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one request's send is retried.

    Waits grow exponentially with full jitter, so many workers retrying after one
    outage do not call the provider in step.
    """

    max_attempts: int = 5
    max_elapsed_seconds: float = 60.0
    initial_wait_seconds: float = 0.2
    max_wait_seconds: float = 10.0


class RequestMessageHandler:
    """Handles one request message: bad input is reported, outages are retried."""

    def __init__(self, use_case: RequestVerification, retry: RetryPolicy) -> None:
        self._use_case = use_case
        self._retry = retry

    async def __call__(self, message: ConsumedMessage) -> None:
        structlog.contextvars.bind_contextvars(
            topic=message.topic, partition=message.partition, offset=message.offset
        )
        try:
            await self._handle(message)
        finally:
            structlog.contextvars.unbind_contextvars("topic", "partition", "offset")

    async def _handle(self, message: ConsumedMessage) -> None:
        record_key = f"{message.topic}:{message.partition}:{message.offset}"
        try:
            request = parse_request(message.value, record_key)
        except InvalidPayload as error:
            logger.warning(
                "request_invalid",
                extra={"error": str(error), "verification_id": error.verification_id},
            )
            if error.verification_id is not None:
                await self._use_case.reject_invalid(error.verification_id, str(error))
            return

        logger.debug("request_received", extra={"verification_id": request.verification_id})
        # One owner per handling of this message: retries below keep it, so they may
        # resume a send this handling started, while another worker may not.
        owner = uuid.uuid4().hex
        await self._while_store_unavailable(request, owner)

    async def _while_store_unavailable(self, request: VerificationRequest, owner: str) -> None:
        # A store outage, or another worker holding the same request, is waited out
        # without limit: the message stays uncommitted, so nothing is lost, and the
        # worker resumes when the store returns or the other worker's claim ends.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((StoreUnavailable, RequestInProgress)),
            wait=wait_random_exponential(multiplier=0.2, max=5.0),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                await self._with_send_retries(request, owner)

    async def _with_send_retries(self, request: VerificationRequest, owner: str) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(ProviderUnavailable),
            stop=stop_after_attempt(self._retry.max_attempts)
            | stop_after_delay(self._retry.max_elapsed_seconds),
            wait=wait_random_exponential(
                multiplier=self._retry.initial_wait_seconds, max=self._retry.max_wait_seconds
            ),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._use_case.execute(request, owner)
        except ProviderUnavailable as error:
            await self._use_case.abandon(request, owner, error)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "request_retry",
        extra={
            "attempt": state.attempt_number,
            "error": repr(error),
            "wait_seconds": round(state.upcoming_sleep, 3),
        },
    )
