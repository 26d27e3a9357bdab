"""The operator command line (`python -m entrypoints.cli`): lists and replays dead letters."""

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.dead_letters import (
    DLQ_SUFFIX,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    REASON_HEADER,
    KafkaDeadLetterReader,
    create_dead_letter_producer,
    dead_letter_topic,
    header_text,
    replay_headers,
)
from application.errors import PortError
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings
from entrypoints.startup import load_settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
REPLAY_GROUP_SUFFIX = ".dlq-replay"

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, slots=True)
class DeadLetterCommand:
    """The options of one `dlq replay` or `dlq list` run."""

    topic: str
    limit: int | None
    dry_run: bool

    @property
    def dlq_topic(self) -> str:
        return dead_letter_topic(self.topic)


class KafkaUnreachable(Exception):
    """The consumer could not connect to any bootstrap server."""


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of `python -m entrypoints.cli`."""
    parser = argparse.ArgumentParser(
        prog="python -m entrypoints.cli",
        description="Operator commands of the WhatsApp verification service. Settings "
        "come from the environment and .env, as for the worker.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dlq = commands.add_parser(
        "dlq",
        help="list or replay dead letters",
        description="Dead letters are requests the worker could not handle, kept on "
        f"<topic>{DLQ_SUFFIX} with the reason in their dlq.* headers.",
    )
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    replay = actions.add_parser(
        "replay",
        help="produce the dead letters to the main topic again",
        description="Produce each dead letter not replayed yet to the main topic, with its "
        "key, value and original headers plus dlq.replayed_from, and commit it in the "
        f"consumer group <KAFKA_GROUP_ID>{REPLAY_GROUP_SUFFIX}. Stops at the end of the "
        "dead-letter topic as found at start, so letters that arrive meanwhile wait for "
        "the next run. A letter whose commit failed is replayed again by the next run. "
        "Run one replay at a time: two at once replay every letter twice.",
    )
    _add_selection_arguments(replay)
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="print one line per dead letter that would be replayed, and produce or commit nothing",
    )

    listing = actions.add_parser(
        "list",
        help="print the dead letters not replayed yet (the same as replay --dry-run)",
        description="Print one line per dead letter not replayed yet: its topic, partition "
        "and offset, reason, time of failure and error. Produces and commits nothing.",
    )
    _add_selection_arguments(listing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` and return the exit status."""
    arguments = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    command = DeadLetterCommand(
        topic=arguments.topic or settings.KAFKA_TOPIC,
        limit=arguments.limit,
        dry_run=arguments.action == "list" or arguments.dry_run,
    )
    try:
        return asyncio.run(run_dead_letter_command(settings, command))
    except KeyboardInterrupt:
        print(
            "interrupted: the dead letters replayed so far are committed; "
            "run the command again to go on",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


async def run_dead_letter_command(settings: Settings, command: DeadLetterCommand) -> int:
    """List or replay the dead letters of `command.topic`, print a summary, return the status."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.KAFKA_SERVER,
        group_id=settings.KAFKA_GROUP_ID + REPLAY_GROUP_SUFFIX,
        enable_auto_commit=False,
        # A new replay group starts with the oldest dead letter, whatever the worker uses.
        auto_offset_reset="earliest",
    )
    replay = _Replay(settings, command)
    try:
        await _start(consumer)
        reader = KafkaDeadLetterReader(consumer, command.dlq_topic)
        if not await reader.open():
            print(f"no dead letters: topic {command.dlq_topic} does not exist")
            return EXIT_OK
        await replay.run(reader)
    except KafkaUnreachable as error:
        print(
            f"failed to connect to Kafka at KAFKA_SERVER={settings.KAFKA_SERVER} ({error}): "
            "check that the broker is running and that KAFKA_SERVER names it",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except (KafkaError, PortError) as error:
        print(f"{replay.failure_prefix()}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await _stop(consumer)

    print(replay.summary())
    return EXIT_OK


class _Replay:
    """Replays or prints the letters of one run, counting them for the summary."""

    def __init__(self, settings: Settings, command: DeadLetterCommand) -> None:
        self._settings = settings
        self._command = command
        self.count = 0

    async def run(self, reader: KafkaDeadLetterReader) -> None:
        logger.info(
            "dlq_replay_started",
            extra={
                "dlq_topic": self._command.dlq_topic,
                "topic": self._command.topic,
                "dry_run": self._command.dry_run,
                "limit": self._command.limit,
            },
        )
        if self._command.dry_run:
            await self._print_letters(reader)
        else:
            await self._replay_letters(reader)
        logger.info(
            "dlq_replay_finished",
            extra={"dlq_topic": self._command.dlq_topic, "count": self.count},
        )

    def summary(self) -> str:
        letters = _dead_letters(self.count)
        source, target = self._command.dlq_topic, self._command.topic
        if self._command.dry_run:
            return f"would replay {letters} from {source} to {target} (dry run: nothing produced)"
        return f"replayed {letters} from {source} to {target}"

    def failure_prefix(self) -> str:
        if self._command.dry_run:
            return f"listing dead letters failed after {_dead_letters(self.count)}"
        return (
            f"dlq replay failed after replaying {_dead_letters(self.count)}; "
            "the next run goes on from the last committed letter"
        )

    async def _print_letters(self, reader: KafkaDeadLetterReader) -> None:
        async with contextlib.aclosing(reader.letters()) as letters:
            async for letter in letters:
                print(_describe(letter))
                self.count += 1
                if self.count == self._command.limit:
                    return

    async def _replay_letters(self, reader: KafkaDeadLetterReader) -> None:
        producer = create_dead_letter_producer(
            self._settings.KAFKA_SERVER,
            enable_idempotence=self._settings.KAFKA_PRODUCER_IDEMPOTENCE,
        )
        try:
            await producer.start()
            async with contextlib.aclosing(reader.letters()) as letters:
                async for letter in letters:
                    await producer.send_and_wait(
                        self._command.topic,
                        value=letter.value,
                        key=letter.key,
                        headers=replay_headers(letter),
                    )
                    # Committing after each letter bounds a repeat after a failure to
                    # the one letter in hand.
                    await reader.commit(letter)
                    self.count += 1
                    logger.info(
                        "dead_letter_replayed",
                        extra={
                            "dlq_topic": letter.topic,
                            "partition": letter.partition,
                            "offset": letter.offset,
                            "topic": self._command.topic,
                            "reason": header_text(letter, REASON_HEADER),
                        },
                    )
                    if self.count == self._command.limit:
                        return
        finally:
            await producer.stop()


async def _start(consumer: AIOKafkaConsumer) -> None:
    try:
        with _library_errors_hidden():
            await consumer.start()
    except KafkaError as error:
        # aiokafka raises KafkaConnectionError when no bootstrap server accepts a connection.
        raise KafkaUnreachable(str(error)) from error


async def _stop(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        # aiokafka 0.14 lets the cancellation of its own fetch task escape from stop()
        # when the broker is already gone. Only a cancellation of this task is passed on.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


@contextlib.contextmanager
def _library_errors_hidden() -> Iterator[None]:
    # aiokafka logs each failed bootstrap connection at ERROR, while the command
    # reports that failure itself in one line.
    library = logging.getLogger("aiokafka")
    level = library.level
    library.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        library.setLevel(level)


def _describe(letter: ConsumedMessage) -> str:
    reason = header_text(letter, REASON_HEADER) or "unknown"
    failed_at = header_text(letter, FAILED_AT_HEADER) or "unknown"
    error = json.dumps(header_text(letter, ERROR_HEADER) or "", ensure_ascii=False)
    return (
        f"{letter.topic}:{letter.partition}:{letter.offset} "
        f"reason={reason} failed_at={failed_at} error={error}"
    )


def _dead_letters(count: int) -> str:
    return "1 dead letter" if count == 1 else f"{count} dead letters"


def _add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        type=_main_topic,
        help=f"the main topic, whose {DLQ_SUFFIX} topic is read "
        "(default: KAFKA_TOPIC, such as Verification)",
    )
    parser.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="stop after N dead letters (default: all, up to the end found at start)",
    )


def _main_topic(value: str) -> str:
    if not _TOPIC_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid topic name {value!r}: use 1 to 249 letters, digits, '.', '_' or '-'"
        )
    if value.endswith(DLQ_SUFFIX):
        raise argparse.ArgumentTypeError(
            f"{value!r} is a dead-letter topic: name the main topic, "
            f"{value.removesuffix(DLQ_SUFFIX)!r}, and the command reads its {DLQ_SUFFIX} topic"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid count {value!r}: use a whole number above 0")
    return number


if __name__ == "__main__":
    sys.exit(main())
