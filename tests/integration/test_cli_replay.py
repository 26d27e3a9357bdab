"""`python -m entrypoints.cli dlq ...` run as a child process against the Tansu broker."""

import asyncio
import os
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.dead_letters import (
    DeadLetter,
    DeadLetterReason,
    KafkaDeadLetterSink,
    create_dead_letter_producer,
)
from devtools.tansu import TansuBroker
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CODE_SECRET, TEST_SENDER
from tests.support.kafka import read_topic

REPOSITORY = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """Runs the CLI with the settings of one test, in a directory without a `.env` file."""

    environment: dict[str, str]
    directory: Path
    topic: str

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.DLQ"

    async def run(self, *arguments: str, **overrides: str) -> CliResult:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "entrypoints.cli",
            *arguments,
            cwd=self.directory,
            env={**self.environment, **overrides},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(), timeout=CLI_TIMEOUT_SECONDS
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return CliResult(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
def cli(broker: TansuBroker, unique: str, tmp_path: Path) -> Cli:
    topic = f"requests-{unique}"
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    environment = {
        **base,
        "PYTHONPATH": str(REPOSITORY),
        "KAFKA_SERVER": broker.bootstrap_servers,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP_ID": f"group-{unique}",
        "KAFKA_PRODUCER_IDEMPOTENCE": "false",
        "REDIS_CONNECTION": "127.0.0.1:6379",
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TEST_SENDER,
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
        "WEBHOOK_PUBLIC_URL": "http://127.0.0.1:4002",
        "CODE_SECRET": TEST_CODE_SECRET,
        "LOG_FORMAT": "json",
    }
    return Cli(environment, tmp_path, topic)


def _letter(topic: str, offset: int, **changes: Any) -> DeadLetter:
    message = ConsumedMessage(
        topic=topic,
        partition=0,
        offset=offset,
        key=f"key-{offset}".encode(),
        value=f'{{"Id": "user-{offset}", "Phone": "+593991234567"}}'.encode(),
        headers=(("trace-id", f"trace-{offset}".encode()),),
    )
    return DeadLetter(
        replace(message, **changes), DeadLetterReason.INVALID_JSON, "bad phone +593991234567"
    )


async def _store(broker: TansuBroker, *letters: DeadLetter) -> None:
    producer = create_dead_letter_producer(broker.bootstrap_servers, enable_idempotence=False)
    sink = KafkaDeadLetterSink(producer)
    try:
        for letter in letters:
            await sink.send(letter)
    finally:
        await sink.close()


def _by_key(
    records: list[ConsumerRecord[bytes, bytes]],
) -> dict[bytes, ConsumerRecord[bytes, bytes]]:
    return {record.key: record for record in records if record.key is not None}


def _closed_loopback_port() -> int:
    """Return a loopback port that was just free, so a connection to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_replay_copies_letters_to_main_topic(broker: TansuBroker, cli: Cli) -> None:
    earlier_replay = ("dlq.replayed_from", f"{cli.dlq_topic}:3:9".encode())
    await _store(
        broker,
        _letter(cli.topic, 0),
        _letter(cli.topic, 1, headers=(("trace-id", b"trace-1"), earlier_replay)),
    )
    dead_letters = _by_key(await read_topic(broker, cli.dlq_topic))

    result = await cli.run("dlq", "replay")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"replayed 2 dead letters from {cli.dlq_topic} to {cli.topic}\n"
    replayed = _by_key(await read_topic(broker, cli.topic))
    assert sorted(replayed) == [b"key-0", b"key-1"]
    for key, record in replayed.items():
        source = dead_letters[key]
        number = key.decode().removeprefix("key-")
        assert record.value == f'{{"Id": "user-{number}", "Phone": "+593991234567"}}'.encode()
        assert list(record.headers) == [
            ("trace-id", f"trace-{number}".encode()),
            (
                "dlq.replayed_from",
                f"{cli.dlq_topic}:{source.partition}:{source.offset}".encode(),
            ),
        ]


async def test_second_replay_replays_nothing(broker: TansuBroker, cli: Cli) -> None:
    await _store(broker, _letter(cli.topic, 0), _letter(cli.topic, 1))
    first = await cli.run("dlq", "replay")
    assert first.exit_code == 0, first.stderr

    second = await cli.run("dlq", "replay")

    assert second.exit_code == 0, second.stderr
    assert second.stdout == f"replayed 0 dead letters from {cli.dlq_topic} to {cli.topic}\n"
    assert len(await read_topic(broker, cli.topic)) == 2


async def test_dry_run_and_list_change_nothing(broker: TansuBroker, cli: Cli) -> None:
    await _store(broker, _letter(cli.topic, 0), _letter(cli.topic, 1))

    dry_run = await cli.run("dlq", "replay", "--dry-run")
    listing = await cli.run("dlq", "list")

    for result in (dry_run, listing):
        assert result.exit_code == 0, result.stderr
        *letter_lines, summary = result.stdout.splitlines()
        assert len(letter_lines) == 2
        for line in letter_lines:
            assert line.startswith(f"{cli.dlq_topic}:")
            assert "reason=invalid_json" in line
            assert 'error="bad phone +593******567"' in line
        assert summary.startswith(f"would replay 2 dead letters from {cli.dlq_topic}")
    assert await read_topic(broker, cli.topic) == []

    replay = await cli.run("dlq", "replay")
    assert replay.stdout.startswith("replayed 2 dead letters")


async def test_replay_limit_stops_after_n_letters(broker: TansuBroker, cli: Cli) -> None:
    await _store(broker, *(_letter(cli.topic, offset) for offset in range(3)))

    limited = await cli.run("dlq", "replay", "--limit", "1")

    assert limited.exit_code == 0, limited.stderr
    assert limited.stdout == f"replayed 1 dead letter from {cli.dlq_topic} to {cli.topic}\n"
    assert len(await read_topic(broker, cli.topic)) == 1

    rest = await cli.run("dlq", "replay")
    assert rest.stdout.startswith("replayed 2 dead letters")
    assert sorted(_by_key(await read_topic(broker, cli.topic))) == [b"key-0", b"key-1", b"key-2"]


async def test_replay_topic_option_selects_dlq(broker: TansuBroker, cli: Cli, unique: str) -> None:
    other = f"other-{unique}"
    await _store(broker, _letter(other, 0))

    result = await cli.run("dlq", "replay", "--topic", other)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"replayed 1 dead letter from {other}.DLQ to {other}\n"
    assert len(await read_topic(broker, other)) == 1
    assert await read_topic(broker, cli.topic) == []


async def test_missing_dlq_topic_exits_zero(cli: Cli) -> None:
    result = await cli.run("dlq", "replay")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"no dead letters: topic {cli.dlq_topic} does not exist\n"


async def test_unreachable_broker_prints_one_line(cli: Cli) -> None:
    server = f"127.0.0.1:{_closed_loopback_port()}"

    result = await cli.run("dlq", "replay", KAFKA_SERVER=server)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert f"KAFKA_SERVER={server}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_unknown_subcommand_is_usage_error(cli: Cli) -> None:
    result = await cli.run("dlq", "purge")

    assert result.exit_code == 2
    assert result.stderr.startswith("usage:")
    assert "invalid choice: 'purge'" in result.stderr


async def test_topic_option_rejects_dlq_topic_name(cli: Cli) -> None:
    result = await cli.run("dlq", "replay", "--topic", cli.dlq_topic)

    assert result.exit_code == 2
    assert "name the main topic" in result.stderr
