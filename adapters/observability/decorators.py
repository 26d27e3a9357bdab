"""Port decorators that count and trace what passes through them, wired by the container."""

import functools
import inspect
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from opentelemetry import trace

from adapters.observability import metrics
from adapters.observability.spans import child_span
from application.errors import MessageRejected, PortError, ProviderUnavailable
from application.ports import (
    MessageSender,
    Notifier,
    OutgoingMessage,
    ProviderMessage,
    SentMessage,
    VerificationStore,
)
from domain.delivery import DeliveryStatus
from domain.events import (
    CheckApproved,
    CheckFailed,
    CodeSent,
    DeliveryStatusChanged,
    Event,
    SendFailed,
    SendRejected,
)
from domain.phone import PhoneNumber

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class MeasuredMessageSender:
    """Counts each send by outcome and provider error code, then passes the result on."""

    def __init__(self, inner: MessageSender) -> None:
        self._inner = inner

    async def send(self, message: OutgoingMessage) -> SentMessage:
        try:
            sent = await self._inner.send(message)
        except MessageRejected as error:
            metrics.SENDS.labels("rejected", error.error_code or "").inc()
            raise
        except ProviderUnavailable as error:
            metrics.SENDS.labels("unavailable", error.error_code or "").inc()
            raise
        metrics.SENDS.labels("accepted", "").inc()
        return sent

    async def find_recent(self, to: PhoneNumber, since: datetime) -> list[ProviderMessage]:
        return await self._inner.find_recent(to, since)


class MeasuredNotifier:
    """Counts each event by type and reason, and traces its publication.

    A `delivered` status also feeds the time-to-delivered histogram, which reads the
    verification's creation time from `store`; a failed read skips that observation.
    """

    def __init__(self, inner: Notifier, store: VerificationStore) -> None:
        self._inner = inner
        self._store = store

    async def publish(self, event: Event) -> None:
        await self._count(event)
        with child_span(
            tracer,
            f"publish {_event_name(event)}",
            trace.SpanKind.PRODUCER,
            {"verification.event": _event_name(event)},
        ):
            await self._inner.publish(event)

    async def _count(self, event: Event) -> None:
        match event:
            case SendRejected(reason=reason):
                metrics.SEND_REJECTIONS.labels(reason.value).inc()
            case SendFailed(reason=reason):
                metrics.SEND_FAILURES.labels(reason.value).inc()
            case CheckApproved():
                metrics.CHECKS.labels("approved").inc()
            case CheckFailed(reason=reason):
                metrics.CHECKS.labels(reason.value).inc()
            case DeliveryStatusChanged(delivery_status=status):
                metrics.DELIVERY_STATUSES.labels(status.value).inc()
                if status is DeliveryStatus.DELIVERED:
                    await self._observe_delivery_time(event)
            case CodeSent():
                pass

    async def _observe_delivery_time(self, event: DeliveryStatusChanged) -> None:
        try:
            verification = await self._store.get(event.verification_id)
        except (PortError, ValueError) as error:
            # A store outage or an undecodable record; the event is still published.
            logger.warning(
                "delivery_time_unknown",
                extra={"verification_id": event.verification_id, "error": repr(error)},
            )
            return
        if verification is not None:
            elapsed = (event.occurred_at - verification.created_at).total_seconds()
            metrics.TIME_TO_DELIVERED.observe(max(elapsed, 0.0))


def _event_name(event: Event) -> str:
    names: dict[type, str] = {
        CodeSent: "code_sent",
        SendFailed: "send_failed",
        SendRejected: "send_rejected",
        DeliveryStatusChanged: "delivery_status",
        CheckApproved: "check_approved",
        CheckFailed: "check_failed",
    }
    return names[type(event)]


class TracedRedisPort:
    """Wraps every coroutine method of a Redis-backed port in a client span.

    The span names the port and method, such as `VerificationStore.create`, and contains
    no argument, so no code, phone number or key reaches the trace.
    """

    def __init__(self, inner: object, port_name: str) -> None:
        self._inner = inner
        self._port_name = port_name

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        traced = self._traced(attribute, f"{self._port_name}.{name}")
        # Kept on the instance, where later lookups find it without calling __getattr__.
        setattr(self, name, traced)
        return traced

    @staticmethod
    def _traced(
        method: Callable[..., Coroutine[Any, Any, Any]], operation: str
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        attributes = {"db.system.name": "redis", "db.operation.name": operation}

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            with child_span(tracer, operation, trace.SpanKind.CLIENT, attributes):
                return await method(*args, **kwargs)

        return call
