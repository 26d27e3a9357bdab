"""Dead letters: messages the worker cannot handle, kept on `<topic>.DLQ` for inspection."""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from adapters.kafka.consumer import ConsumedMessage
from adapters.notification.frames import format_timestamp, mask_phone_numbers
from adapters.system import SystemClock
from application.errors import PortError
from application.ports import Clock

logger = logging.getLogger(__name__)

DLQ_SUFFIX = ".DLQ"

# Headers the sink adds to each dead letter. Values are UTF-8 text.
DLQ_HEADER_PREFIX = "dlq."
REASON_HEADER = "dlq.reason"
ERROR_HEADER = "dlq.error"
ORIGINAL_TOPIC_HEADER = "dlq.original.topic"
ORIGINAL_PARTITION_HEADER = "dlq.original.partition"
ORIGINAL_OFFSET_HEADER = "dlq.original.offset"
FAILED_AT_HEADER = "dlq.failed_at"
# Added by a replay to the re-produced message: `<dlq topic>:<partition>:<offset>`.
REPLAYED_FROM_HEADER = "dlq.replayed_from"

_SINK_HEADERS = frozenset(
    {
        REASON_HEADER,
        ERROR_HEADER,
        ORIGINAL_TOPIC_HEADER,
        ORIGINAL_PARTITION_HEADER,
        ORIGINAL_OFFSET_HEADER,
        FAILED_AT_HEADER,
    }
)

MAX_ERROR_LENGTH = 1000


class DeadLetterReason(StrEnum):
    """Reason a message went to the dead-letter topic."""

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that cannot be handled, with the reason and the error text."""

    message: ConsumedMessage
    reason: DeadLetterReason
    error: str


class DeadLetterSink(Protocol):
    """Keeps dead letters, so the source message can be committed without losing it."""

    async def send(self, letter: DeadLetter) -> None:
        """Store `letter` durably before returning; raise if it could not be stored."""
        ...


class DeadLetterUnavailable(PortError):
    """The dead-letter topic could not be written or read now; the same call may succeed later."""

    retriable = True


class DeadLetterRejected(PortError):
    """The broker rejected the dead letter for a reason that retrying does not fix."""

    retriable = False


def dead_letter_topic(topic: str) -> str:
    """Return the name of the dead-letter topic of `topic`."""
    return topic + DLQ_SUFFIX


def create_dead_letter_producer(
    bootstrap_servers: str, *, enable_idempotence: bool = True
) -> AIOKafkaProducer:
    """Build, without starting, a producer that waits for every in-sync replica.

    `enable_idempotence=False` is for brokers without the idempotent producer, such as
    Tansu 0.6, which rejects its producer-id request.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=enable_idempotence,
    )


class KafkaDeadLetterSink:
    """Produces each dead letter to `<original topic>.DLQ` and waits for the broker's ack.

    The record keeps the original key, value and headers, and gains the `dlq.*`
    headers above. The partition is chosen by the producer from the key, so it may
    differ from the original one. The sink starts `producer` on the first send and
    stops it in `close`.
    """

    def __init__(self, producer: AIOKafkaProducer, clock: Clock | None = None) -> None:
        self._producer = producer
        self._clock = clock or SystemClock()
        self._started = False
        self._closed = False
        self._starting = asyncio.Lock()

    async def send(self, letter: DeadLetter) -> None:
        """Store `letter` on the dead-letter topic.

        Raises `DeadLetterUnavailable` when the broker is unreachable or timed out,
        and `DeadLetterRejected` when it rejected the record for good.
        """
        message = letter.message
        topic = dead_letter_topic(message.topic)
        value = message.value
        if value is None and message.key is None:
            # A Kafka record needs a key or a value, so a record that had neither is
            # kept with an empty value.
            value = b""
        try:
            await self._start()
            metadata = await self._producer.send_and_wait(
                topic, value=value, key=message.key, headers=self._headers(letter)
            )
        except KafkaError as error:
            raise _not_stored(message, topic, error) from error

        logger.warning(
            "dead_letter_sent",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "reason": str(letter.reason),
                "dlq_topic": topic,
                "dlq_partition": metadata.partition,
                "dlq_offset": metadata.offset,
            },
        )

    async def close(self) -> None:
        """Stop the producer, waiting for records already handed to it."""
        self._closed = True
        await self._producer.stop()

    async def _start(self) -> None:
        # A producer whose start failed can be started again, so an outage at the
        # first dead letter only delays it.
        async with self._starting:
            if self._closed:
                # aiokafka 0.14 waits without end on a send through a stopped producer.
                raise RuntimeError("the dead-letter sink is closed: send before close()")
            if not self._started:
                await self._producer.start()
                self._started = True

    def _headers(self, letter: DeadLetter) -> list[tuple[str, bytes]]:
        message = letter.message
        error = mask_phone_numbers(letter.error)
        if len(error) > MAX_ERROR_LENGTH:
            error = error[: MAX_ERROR_LENGTH - 1] + "…"
        added = [
            (REASON_HEADER, str(letter.reason)),
            (ERROR_HEADER, error),
            (ORIGINAL_TOPIC_HEADER, message.topic),
            (ORIGINAL_PARTITION_HEADER, str(message.partition)),
            (ORIGINAL_OFFSET_HEADER, str(message.offset)),
            (FAILED_AT_HEADER, format_timestamp(self._clock.now())),
        ]
        # Original headers with a name the sink sets are dropped, so each `dlq.*`
        # name appears once. Others, such as `dlq.replayed_from`, are kept.
        carried = [(name, value) for name, value in message.headers if name not in _SINK_HEADERS]
        return [(name, value.encode()) for name, value in added] + carried


def _not_stored(message: ConsumedMessage, topic: str, error: KafkaError) -> PortError:
    source = f"{message.topic}:{message.partition}:{message.offset}"
    detail = f"failed to store the dead letter of {source} on topic {topic}: {error}"
    # aiokafka 0.14 marks KafkaTimeoutError not retriable, yet it means the broker did
    # not respond within request_timeout_ms, as during an outage.
    if error.retriable or isinstance(error, KafkaTimeoutError):
        return DeadLetterUnavailable(
            f"{detail}. Check that Kafka is reachable and that topic {topic} exists "
            "or can be created automatically."
        )
    return DeadLetterRejected(
        f"{detail}. Check the topic's access rights and max.message.bytes, and set "
        "KAFKA_PRODUCER_IDEMPOTENCE=false for a broker without the idempotent producer."
    )


def header_text(message: ConsumedMessage, name: str) -> str | None:
    """Return the last header called `name` as text, or None when it is absent."""
    values = [value for header, value in message.headers if header == name]
    return values[-1].decode(errors="replace") if values else None


def replay_headers(letter: ConsumedMessage) -> list[tuple[str, bytes]]:
    """Return the headers of a replayed message: the original ones and its DLQ source.

    Every `dlq.*` header of the dead letter is dropped, including the source of an
    earlier replay, and `dlq.replayed_from` names this dead letter's topic, partition
    and offset.
    """
    source = f"{letter.topic}:{letter.partition}:{letter.offset}"
    original = [
        (name, value) for name, value in letter.headers if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    return [*original, (REPLAYED_FROM_HEADER, source.encode())]


class KafkaDeadLetterReader:
    """Reads a dead-letter topic up to the end offsets it finds when opened.

    The consumer must be started, have a group id and auto-commit off. Partitions are
    assigned to it directly, without joining the group, and reading starts at the
    group's committed offsets, or at the beginning for a new group. Letters that
    arrive after `open`, including those of replayed messages that fail again, wait
    for the next run, so a replay always ends.

    NOTE: Two readers of one group at once both read every letter, because they do
    not join the group to split the partitions.
    """

    def __init__(
        self, consumer: AIOKafkaConsumer, topic: str, idle_timeout_seconds: float = 30.0
    ) -> None:
        self._consumer = consumer
        self.topic = topic
        self._idle_timeout_seconds = idle_timeout_seconds
        self._end_offsets: dict[TopicPartition, int] = {}

    async def open(self) -> bool:
        """Assign every partition of the topic and record its end offset.

        Returns False when the topic does not exist.
        """
        if self.topic not in await self._consumer.topics():
            return False
        # Before any assignment the consumer tracks metadata of every topic, so this
        # finds the partitions without asking for the topic, which could create it.
        partition_ids = self._consumer.partitions_for_topic(self.topic)
        if partition_ids is None:
            # Created moments ago, after the consumer started: read as empty this run.
            return False
        partitions = [TopicPartition(self.topic, number) for number in sorted(partition_ids)]
        self._consumer.assign(partitions)
        self._end_offsets = await self._consumer.end_offsets(partitions)
        return True

    async def letters(self) -> AsyncGenerator[ConsumedMessage, None]:
        """Yield the letters from the committed offsets up to the end offsets.

        Letters of one partition come in offset order.

        Raises `DeadLetterUnavailable` when no letter arrives for the idle timeout
        although some are due.
        """
        remaining = await self._unfinished(set(self._end_offsets))
        last_progress = time.monotonic()
        while remaining:
            batches = await self._consumer.getmany(*remaining, timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    if record.offset >= self._end_offsets[partition]:
                        break
                    yield ConsumedMessage.from_record(record)
                    last_progress = time.monotonic()
            remaining = await self._unfinished(remaining)
            if remaining and time.monotonic() - last_progress > self._idle_timeout_seconds:
                raise DeadLetterUnavailable(
                    f"no dead letter arrived from {self.topic} for "
                    f"{self._idle_timeout_seconds:g} s although partitions "
                    f"{sorted(partition.partition for partition in remaining)} have more: "
                    "check that Kafka is reachable"
                )

    async def commit(self, letter: ConsumedMessage) -> None:
        """Commit the group's offset past `letter`, so the next run starts after it."""
        partition = TopicPartition(letter.topic, letter.partition)
        await self._consumer.commit({partition: letter.offset + 1})

    async def _unfinished(self, partitions: set[TopicPartition]) -> set[TopicPartition]:
        unfinished = set()
        for partition in partitions:
            if await self._consumer.position(partition) < self._end_offsets[partition]:
                unfinished.add(partition)
        return unfinished
