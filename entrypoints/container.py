"""The dependency-injector container: the one place that names concrete adapters."""

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from dependency_injector import containers, providers

from adapters.kafka.consumer import ConsumerOptions, KafkaRequestConsumer
from adapters.kafka.dead_letters import (
    DeadLetterSink,
    KafkaDeadLetterSink,
    create_dead_letter_producer,
)
from adapters.kafka.request_handler import RequestMessageHandler, RetryPolicy, request_order
from adapters.observability.decorators import (
    MeasuredMessageSender,
    MeasuredNotifier,
    TracedRedisPort,
)
from adapters.phone import PhonenumbersParser
from adapters.redis.connection import RedisClient, create_redis_client
from adapters.redis.ledger import RedisRequestLedger
from adapters.redis.limiter import RedisSendLimiter
from adapters.redis.plain_codes import RedisPlainCodeStore
from adapters.redis.store import RedisVerificationStore
from adapters.system import SecretsCodeGenerator, SystemClock
from adapters.twilio.pacing import PacedMessageSender, TokenBucket
from adapters.twilio.sender import TwilioMessageSender
from adapters.twilio.signature import TwilioSignatureValidator
from application.check_verification import CheckVerification
from application.manage_verification import ManageVerification
from application.policy import VerificationPolicy
from application.ports import MessageSender
from application.record_delivery_status import RecordDeliveryStatus
from application.request_verification import MessageTemplate, RequestVerification
from domain.code import CodeDigester
from entrypoints.notifiers import notifier_resource
from entrypoints.settings import Settings


async def _redis_client(settings: Settings) -> AsyncIterator[RedisClient]:
    client = create_redis_client(settings.REDIS_CONNECTION, cluster=settings.REDIS_CLUSTER)
    try:
        yield client
    finally:
        await client.aclose()


async def _twilio_sender(settings: Settings) -> AsyncIterator[TwilioMessageSender]:
    sender = TwilioMessageSender(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN.get_secret_value(),
        sender_number=settings.TWILIO_PHONE_NUMBER,
        status_callback_base_url=str(settings.WEBHOOK_PUBLIC_URL),
        api_base_url=str(settings.TWILIO_API_BASE_URL),
        timeout_seconds=settings.TWILIO_TIMEOUT_SECONDS,
        # Every message in flight may be waiting on its own Twilio call.
        max_connections=settings.MAX_IN_FLIGHT,
    )
    try:
        yield sender
    finally:
        await sender.close()


def _paced(sender: TwilioMessageSender, settings: Settings) -> MessageSender:
    if settings.TWILIO_MAX_MPS == 0:
        return sender
    return PacedMessageSender(sender, TokenBucket(settings.TWILIO_MAX_MPS))


async def _dead_letter_sink(settings: Settings) -> AsyncIterator[DeadLetterSink]:
    producer = create_dead_letter_producer(
        settings.KAFKA_SERVER, enable_idempotence=settings.KAFKA_PRODUCER_IDEMPOTENCE
    )
    sink = KafkaDeadLetterSink(producer)
    try:
        yield sink
    finally:
        await sink.close()


def _consumer_options(settings: Settings) -> ConsumerOptions:
    return ConsumerOptions(
        max_in_flight=settings.MAX_IN_FLIGHT,
        shutdown_timeout_seconds=settings.SHUTDOWN_TIMEOUT_SECONDS,
    )


def _kafka_consumer(settings: Settings) -> AIOKafkaConsumer:
    # No topic here: the request consumer subscribes with its rebalance listener.
    return AIOKafkaConsumer(
        bootstrap_servers=settings.KAFKA_SERVER,
        group_id=settings.KAFKA_GROUP_ID,
        enable_auto_commit=False,
        auto_offset_reset=settings.KAFKA_AUTO_OFFSET_RESET,
        session_timeout_ms=settings.KAFKA_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=max(settings.KAFKA_SESSION_TIMEOUT_MS // 10, 100),
    )


def _code_secret(settings: Settings) -> bytes:
    return settings.CODE_SECRET.get_secret_value().encode()


def _policy(settings: Settings) -> VerificationPolicy:
    return VerificationPolicy(
        code_time_to_live=timedelta(seconds=settings.CODE_TTL_SECONDS),
        max_check_attempts=settings.MAX_CHECK_ATTEMPTS,
        resend_cooldown=timedelta(seconds=settings.RESEND_COOLDOWN_SECONDS),
        allowed_countries=settings.allowed_countries,
        claim_lease=timedelta(seconds=settings.CLAIM_LEASE_SECONDS),
        legacy_plain_code=settings.LEGACY_PLAIN_CODE,
    )


T = TypeVar("T")


async def resolved(provided: T | Awaitable[T]) -> T:
    """Return a provider's result, awaiting it when an async resource was in its graph.

    dependency-injector returns an awaitable only while some async resource the
    provider depends on is not started yet, and the object itself otherwise.
    """
    if inspect.isawaitable(provided):
        return await provided
    return provided


class Container(containers.DeclarativeContainer):
    """Builds the worker's and the webhook's object graphs from one `Settings`.

    Resources are started on first use and closed by `shutdown_resources()`, so each
    process opens only the connections it needs.
    """

    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    codes = providers.Singleton(
        SecretsCodeGenerator,
        length=settings.provided.CODE_LENGTH,
        alphabet=settings.provided.CODE_ALPHABET,
    )
    phones = providers.Singleton(PhonenumbersParser, settings.provided.DEFAULT_REGION)
    digester = providers.Singleton(CodeDigester, providers.Callable(_code_secret, settings))
    template = providers.Singleton(MessageTemplate, settings.provided.MESSAGE_TEMPLATE)
    policy = providers.Singleton(_policy, settings)

    redis = providers.Resource(_redis_client, settings)
    store = providers.Singleton(
        RedisVerificationStore,
        redis,
        key_prefix=settings.provided.REDIS_KEY_PREFIX,
        retention_seconds=settings.provided.RECORD_RETENTION_SECONDS,
    )
    ledger = providers.Singleton(
        RedisRequestLedger,
        redis,
        key_prefix=settings.provided.REDIS_KEY_PREFIX,
        window_seconds=settings.provided.IDEMPOTENCY_WINDOW_SECONDS,
    )
    limiter = providers.Singleton(
        RedisSendLimiter,
        redis,
        key_prefix=settings.provided.REDIS_KEY_PREFIX,
        per_phone_per_hour=settings.provided.MAX_SENDS_PER_PHONE_PER_HOUR,
        per_phone_per_day=settings.provided.MAX_SENDS_PER_PHONE_PER_DAY,
        global_per_minute=settings.provided.MAX_SENDS_PER_MINUTE,
    )
    plain_codes = providers.Singleton(RedisPlainCodeStore, redis)
    twilio_sender = providers.Resource(_twilio_sender, settings)
    sender = providers.Singleton(_paced, twilio_sender, settings)
    notifier = providers.Resource(notifier_resource, settings)
    signature_validator = providers.Singleton(
        TwilioSignatureValidator,
        auth_token=providers.Callable(
            lambda settings: settings.TWILIO_AUTH_TOKEN.get_secret_value(), settings
        ),
        public_base_url=providers.Callable(str, settings.provided.WEBHOOK_PUBLIC_URL),
    )

    # The use cases get the ports through these metric and tracing decorators, which
    # also wrap the fakes that tests put in place of the providers above.
    observed_store = providers.Singleton(TracedRedisPort, store, "VerificationStore")
    observed_ledger = providers.Singleton(TracedRedisPort, ledger, "RequestLedger")
    observed_limiter = providers.Singleton(TracedRedisPort, limiter, "SendLimiter")
    observed_plain_codes = providers.Singleton(TracedRedisPort, plain_codes, "PlainCodeStore")
    observed_sender = providers.Singleton(MeasuredMessageSender, sender)
    observed_notifier = providers.Singleton(MeasuredNotifier, notifier, observed_store)

    request_verification = providers.Singleton(
        RequestVerification,
        store=observed_store,
        sender=observed_sender,
        notifier=observed_notifier,
        clock=clock,
        codes=codes,
        phones=phones,
        digester=digester,
        template=template,
        ledger=observed_ledger,
        limiter=observed_limiter,
        plain_codes=observed_plain_codes,
        policy=policy,
    )
    record_delivery_status = providers.Singleton(
        RecordDeliveryStatus, store=observed_store, notifier=observed_notifier, clock=clock
    )
    check_verification = providers.Singleton(
        CheckVerification,
        store=observed_store,
        notifier=observed_notifier,
        clock=clock,
        digester=digester,
        plain_codes=observed_plain_codes,
        policy=policy,
    )
    manage_verification = providers.Singleton(
        ManageVerification,
        store=observed_store,
        clock=clock,
        plain_codes=observed_plain_codes,
        policy=policy,
    )

    retry_policy = providers.Singleton(
        RetryPolicy,
        max_attempts=settings.provided.SEND_MAX_ATTEMPTS,
        max_elapsed_seconds=settings.provided.SEND_MAX_ELAPSED_SECONDS,
    )
    dead_letters = providers.Resource(_dead_letter_sink, settings)
    request_handler = providers.Singleton(
        RequestMessageHandler,
        request_verification,
        retry_policy,
        dead_letters,
        max_age_seconds=settings.provided.MAX_REQUEST_AGE_SECONDS,
    )
    # A factory rather than one consumer: a consumer that failed to start cannot be
    # started again, so the request consumer builds a new one for each try.
    kafka_consumer_factory = providers.Callable(functools.partial, _kafka_consumer, settings)
    request_consumer = providers.Factory(
        KafkaRequestConsumer,
        kafka_consumer_factory,
        settings.provided.KAFKA_TOPIC,
        request_handler,
        options=providers.Callable(_consumer_options, settings),
        ordering_key=request_order,
        admission=request_handler.provided.wait_until_ready,
    )
