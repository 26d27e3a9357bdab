"""Turns one consumed Kafka message into a RequestVerification call, with bounded retries."""

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.dead_letters import DeadLetter, DeadLetterReason, DeadLetterSink
from adapters.kafka.payloads import InvalidPayload, parse_request
from adapters.kafka.retries import call_with_retries
from adapters.observability import metrics
from application.errors import PortError, ProviderUnavailable, RequestInProgress, StoreUnavailable
from application.request_verification import RequestVerification, VerificationRequest

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_propagator = TraceContextTextMapPropagator()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one request's send is retried.

    Waits grow exponentially with full jitter, so many workers retrying after one
    outage do not call the provider in step, and never undercut a `Retry-After`.
    """

    max_attempts: int = 5
    max_elapsed_seconds: float = 60.0
    initial_wait_seconds: float = 0.2
    max_wait_seconds: float = 10.0


def request_order(message: ConsumedMessage) -> object:
    """Order requests by Kafka key, or by verification id for keyless producers."""
    if message.key is not None:
        return message.key
    try:
        document = json.loads(message.value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    verification_id = document.get("Id", document.get("verification_id"))
    return str(verification_id) if isinstance(verification_id, str | int) else None


class _RetryAfterAwareWait:
    """Full-jitter exponential wait that honours the provider's `Retry-After`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(
            multiplier=policy.initial_wait_seconds, max=policy.max_wait_seconds
        )

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._jitter(state))
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after_seconds", None)
        return max(wait, float(retry_after)) if retry_after else wait


class RequestMessageHandler:
    """Handles one request message: bad input goes to dead letters, outages are retried.

    While the store is unreachable, `wait_until_ready` keeps the consumer from
    fetching more, and the messages in hand keep retrying without being committed.
    """

    def __init__(
        self,
        use_case: RequestVerification,
        retry: RetryPolicy,
        dead_letters: DeadLetterSink,
        max_age_seconds: int = 0,
    ) -> None:
        self._use_case = use_case
        self._max_age_seconds = max_age_seconds
        self._retry = retry
        self._dead_letters = dead_letters
        self._store_ready = asyncio.Event()
        self._store_ready.set()

    async def wait_until_ready(self) -> None:
        await self._store_ready.wait()

    async def __call__(self, message: ConsumedMessage) -> None:
        structlog.contextvars.bind_contextvars(
            topic=message.topic, partition=message.partition, offset=message.offset
        )
        outcome = "unfinished"
        try:
            with tracer.start_as_current_span(
                f"process {message.topic}",
                context=_producer_context(message),
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": message.topic,
                    "messaging.destination.partition.id": str(message.partition),
                    "messaging.kafka.message.offset": message.offset,
                },
            ):
                outcome = await self._handle(message)
        finally:
            metrics.REQUESTS_CONSUMED.labels(outcome).inc()
            structlog.contextvars.unbind_contextvars("topic", "partition", "offset")

    async def _handle(self, message: ConsumedMessage) -> str:
        """Handle `message` and return its outcome for the consumed-requests metric."""
        # The timestamp distinguishes two records at one offset, as when a topic is
        # recreated or a development broker restarts empty, while a redelivery of the
        # same record keeps it.
        record_key = f"{message.topic}:{message.partition}:{message.offset}:{message.timestamp}"
        try:
            request = parse_request(message.value, record_key)
        except InvalidPayload as error:
            await self._reject(message, error)
            return "invalid"

        trace.get_current_span().set_attribute("verification.id", request.verification_id)
        logger.debug("request_received", extra={"verification_id": request.verification_id})
        age_seconds = int(time.time() - message.timestamp / 1000) if message.timestamp else 0
        if self._max_age_seconds and age_seconds > self._max_age_seconds:
            # Read long after it was made (a replay, lost offsets, a long outage): the
            # person stopped waiting, and a code now would only confuse them.
            await self._use_case.reject_stale(request.verification_id, age_seconds)
            return "stale"
        # One owner per handling of this message: retries below keep it, so they may
        # resume a send this handling started, while another worker may not.
        owner = uuid.uuid4().hex
        exhausted = await self._while_store_unavailable(request, owner)
        if exhausted is not None:
            await self._dead_letter(message, DeadLetterReason.RETRIES_EXHAUSTED, exhausted)
            return "dead_lettered"
        return "handled"

    async def _reject(self, message: ConsumedMessage, error: InvalidPayload) -> None:
        logger.warning(
            "request_invalid",
            extra={"error": str(error), "verification_id": error.verification_id},
        )
        reason = (
            DeadLetterReason.INVALID_REQUEST
            if error.is_json_object
            else DeadLetterReason.INVALID_JSON
        )
        await self._dead_letter(message, reason, error)
        if error.verification_id is not None:
            await self._use_case.reject_invalid(error.verification_id, str(error))

    async def _dead_letter(
        self, message: ConsumedMessage, reason: DeadLetterReason, error: Exception
    ) -> None:
        # Retried without limit like a store outage: committing the message before its
        # dead letter is stored would lose it.
        async for attempt in AsyncRetrying(
            retry=lambda state: bool(
                state.outcome and getattr(state.outcome.exception(), "retriable", False)
            ),
            wait=wait_random_exponential(multiplier=0.2, max=5.0),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                await self._dead_letters.send(DeadLetter(message, reason, str(error)))
        metrics.DEAD_LETTERS.labels(reason.value).inc()

    async def _while_store_unavailable(
        self, request: VerificationRequest, owner: str
    ) -> PortError | None:
        """Handle `request`, waiting out store outages; return the error if sends ran out."""
        # A store outage, or another worker holding the same request, is waited out
        # without limit: the message stays uncommitted, so nothing is lost, and the
        # worker resumes when the store returns or the other worker's claim ends.
        exhausted = await call_with_retries(
            lambda: self._with_send_retries(request, owner),
            lambda: AsyncRetrying(
                retry=retry_if_exception_type((StoreUnavailable, RequestInProgress)),
                wait=wait_random_exponential(multiplier=0.2, max=5.0),
                before_sleep=self._before_store_retry,
                reraise=True,
            ),
        )
        self._store_ready.set()
        return exhausted

    def _before_store_retry(self, state: RetryCallState) -> None:
        if state.outcome is not None and isinstance(state.outcome.exception(), StoreUnavailable):
            self._store_ready.clear()
        _log_retry(state)

    async def _with_send_retries(
        self, request: VerificationRequest, owner: str
    ) -> ProviderUnavailable | None:
        try:
            await call_with_retries(
                lambda: self._use_case.execute(request, owner),
                lambda: AsyncRetrying(
                    retry=retry_if_exception_type(ProviderUnavailable),
                    stop=stop_after_attempt(self._retry.max_attempts)
                    | stop_after_delay(self._retry.max_elapsed_seconds),
                    wait=_RetryAfterAwareWait(self._retry),
                    before_sleep=_log_retry,
                    reraise=True,
                ),
            )
        except ProviderUnavailable as error:
            await self._use_case.abandon(request, owner, error)
            return error
        return None


def _producer_context(message: ConsumedMessage) -> Context:
    """Return the trace context of the record's W3C `traceparent` header, or a new root."""
    carrier = {name.lower(): value.decode("latin-1") for name, value in message.headers}
    # An empty Context, not the current one, so a record without the header starts a
    # trace of its own instead of joining whatever the consumer task carries.
    return _propagator.extract(carrier, context=Context())


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    metrics.RETRIES.labels(type(error).__name__).inc()
    logger.warning(
        "request_retry",
        extra={
            "attempt": state.attempt_number,
            "error": repr(error),
            "wait_seconds": round(state.upcoming_sleep, 3),
        },
    )
