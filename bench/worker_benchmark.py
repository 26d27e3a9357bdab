"""Measure the worker from Kafka request to Twilio accept (`python -m bench.worker_benchmark`).

The script starts, all on 127.0.0.1: a Tansu broker, the project's Twilio emulator
as a child process (`--response-delay-ms`, no status callbacks) and the real worker
(`python -m entrypoints.worker`) as a child process. The worker runs with pacing and
the per-phone limits off, no hub, its metrics server on a free port, no OTEL_*
variables (so spans are recorded but not exported), and its own topic, consumer
group and Redis key prefix. Two runs follow, each with a new worker:

1. `--count` requests with `MAX_IN_FLIGHT=--max-in-flight`;
2. `--baseline-count` requests with `MAX_IN_FLIGHT=1`, the one-at-a-time design.

Each run first sends a few warm-up requests, so the group has joined and the
connections are open. It then publishes the measured requests with distinct ids and
phones, round-robin over the topic's partitions, with `published_at_ns` in each body,
and waits until the emulator has recorded every one of them.

- Throughput is the count divided by the time from the first publish to the last
  accept.
- Service time is, per request, the time from the creation of its Redis record,
  after the ledger claim and the first read, to the accept.
- Latency is, per request, the time from its publish to the moment the worker got
  Twilio's 201. That moment is the `queued` entry the worker writes into the request's
  Redis record right after the API call returns. The emulator's own `received_at`
  is not used, because the emulator rounds it down to whole seconds. Emulator
  messages are matched to requests by the `verification_id` in their StatusCallback
  URL, and each one's SID must equal the SID in the Redis record.
- Worker CPU is utime + stime of the worker process from /proc, read after the
  warm-up and again once the emulator contains every message and every Redis record
  names its message, so the idle time of that last poll is included.

The CPU of the emulator, the broker, this script and Redis (`INFO cpu`, which
counts every client of that server) is reported too, with the busy share of the whole
machine from /proc/stat, to show what shared the cores.

With `--py-spy-output`, py-spy samples the main run's worker. Sampling costs the
worker CPU, so the figures of a profiled run are not comparable with the others.

Every key goes under a prefix of this run alone and is deleted at the end, and every
process started here is stopped, also after an error.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from devtools.ports import free_port
from devtools.tansu import TansuBroker, tansu_binary

REPOSITORY = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379"
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# Credentials of the emulator alone. Nothing here talks to Twilio.
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-auth-token-0123456789"
SENDER = "+14155550100"
CODE_SECRET = "bench-code-secret-0123456789abcdef"

MAX_COUNT = 100_000
MAX_BASELINE_COUNT = 10_000
STARTUP_TIMEOUT_SECONDS = 30.0
WARM_UP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
# Rendering the full message list costs the emulator about 12 ms of CPU for 5,000
# messages, which the worker competes for. So the list is read at most once a second,
# and more often only when the missing messages should arrive within that second.
# The figures come from per-message times, not from the polls.
MAX_POLL_INTERVAL_SECONDS = 1.0
MIN_POLL_INTERVAL_SECONDS = 0.1
REDIS_BATCH = 500
RECORDS_TIMEOUT_SECONDS = 10.0
TARGET_PER_SECOND = 1_000
TARGET_RATIO = 100
TARGET_CPU_MS_PER_VERIFICATION = 1.0


@dataclass(frozen=True, slots=True)
class Request:
    """One published request and the moment it was handed to the producer."""

    verification_id: str
    phone: str
    published_at_ns: int


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds used so far by each process that shares the machine's cores."""

    worker: float
    emulator: float
    broker: float
    redis: float
    bench: float
    machine_busy: float
    machine_total: float
    taken_at: float


@dataclass(frozen=True, slots=True)
class RunResult:
    """The figures of one run."""

    label: str
    max_in_flight: int
    count: int
    seconds: float
    per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    service_p50_ms: float
    worker_cpu_seconds: float
    worker_cpu_ms_per_verification: float
    # Worker CPU seconds per second of the window between the two CPU readings.
    worker_core_share: float
    emulator_cpu_seconds: float
    broker_cpu_seconds: float
    redis_cpu_seconds: float
    bench_cpu_seconds: float
    machine_busy_share: float


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worker_benchmark",
        description="Measure the worker's throughput, latency and CPU per verification "
        "against a local broker, Redis and Twilio emulator.",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=5_000,
        help=f"requests of the main run, 1 to {MAX_COUNT} (default: %(default)s)",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=256,
        help="MAX_IN_FLIGHT of the main run's worker, 1 to 10000 (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline-count",
        type=int,
        default=100,
        help=f"requests of the MAX_IN_FLIGHT=1 run, 0 to skip it, at most {MAX_BASELINE_COUNT} "
        "(default: %(default)s)",
    )

    parser.add_argument(
        "--partitions",
        type=int,
        default=8,
        help="partitions of each run's topic, 1 to 64 (default: %(default)s)",
    )
    parser.add_argument(
        "--response-delay-ms",
        type=int,
        default=100,
        help="the emulator's delay before each API response, in milliseconds "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--publish-rate",
        type=float,
        default=0.0,
        help="requests published per second, or 0 to publish them all at once "
        "(default: %(default)s)",
    )

    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=300.0,
        help="time limit of each run's measured phase, in seconds (default: %(default)s)",
    )

    parser.add_argument(
        "--py-spy-output",
        type=Path,
        help="profile the main run's worker with py-spy and write the profile to this file",
    )
    parser.add_argument(
        "--py-spy-format",
        choices=["flamegraph", "raw", "speedscope"],
        default="flamegraph",
        help="py-spy output format: flamegraph (SVG), raw (collapsed stacks) or speedscope "
        "(default: %(default)s)",
    )

    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add or override a setting of the worker in both runs, such as "
        "OTEL_TRACES_EXPORTER=console; may be given more than once",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the directory with the logs of the child processes and print its path",
    )
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the options, exiting with status 2 and a message when one is invalid."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.count <= MAX_COUNT:
        parser.error(f"invalid --count {arguments.count}: use 1 to {MAX_COUNT}")
    if not 0 <= arguments.baseline_count <= MAX_BASELINE_COUNT:
        parser.error(
            f"invalid --baseline-count {arguments.baseline_count}: use 0 to {MAX_BASELINE_COUNT}"
        )
    if not 1 <= arguments.max_in_flight <= 10_000:
        parser.error(f"invalid --max-in-flight {arguments.max_in_flight}: use 1 to 10000")
    if not 1 <= arguments.partitions <= 64:
        parser.error(f"invalid --partitions {arguments.partitions}: use 1 to 64")
    if arguments.response_delay_ms < 0:
        parser.error(f"invalid --response-delay-ms {arguments.response_delay_ms}: use 0 or more")
    if arguments.publish_rate < 0:
        parser.error(f"invalid --publish-rate {arguments.publish_rate}: use 0 or more")
    if arguments.timeout_seconds <= 0:
        parser.error(f"invalid --timeout-seconds {arguments.timeout_seconds}: use more than 0")
    for setting in arguments.worker_setting:
        name, equals, _ = setting.partition("=")
        if not equals or not name.strip():
            parser.error(f"invalid --worker-setting {setting!r}: use NAME=VALUE")
    return arguments


# Processes


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    return {**base, **extra, "PYTHONUNBUFFERED": "1"}


def stop_process(process: subprocess.Popen[bytes], stop_signal: int = signal.SIGTERM) -> None:
    """Signal `process` and wait for it, killing it after the stop timeout."""
    if process.poll() is None:
        process.send_signal(stop_signal)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_for_line(path: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes]) -> str:
    """Return the first match of `pattern` in the log at `path`, waiting for it to appear."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        match = pattern.search(path.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}: see {path}")
        time.sleep(0.05)
    raise TimeoutError(f"{pattern.pattern!r} did not appear in {path} within the startup timeout")


def start_emulator(response_delay_ms: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twilio_emulator",
                "--port",
                "0",
                "--response-delay-ms",
                str(response_delay_ms),
                "--no-callbacks",
            ],
            cwd=REPOSITORY,
            # The token goes through the environment, so it stays out of the process list.
            env=child_environment(
                {
                    "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "TWILIO_PHONE_NUMBER": SENDER,
                }
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = wait_for_line(log, re.compile(r"emulator\.started base_url=(\S+)"), process)
    except BaseException:
        stop_process(process)
        raise
    return process, base_url


def start_worker(environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "entrypoints.worker"],
            cwd=REPOSITORY,
            env=child_environment(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def start_py_spy(
    pid: int, output_path: Path, output_format: str, log: Path
) -> subprocess.Popen[bytes]:
    """Attach py-spy to `pid` and return once it samples."""
    py_spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: run .venv/bin/pip install py-spy")
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "100",
                "--format",
                output_format,
                "--output",
                str(output_path),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_line(log, re.compile(r"(Sampling process)"), process)
    except BaseException:
        stop_process(process, signal.SIGINT)
        raise
    return process


def process_cpu_seconds(pid: int) -> float:
    """Return utime + stime of process `pid`, all its threads together, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name in brackets may contain spaces, so fields are counted after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 in proc(5), and fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def child_pids() -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids.extend(int(pid) for pid in (task / "children").read_text().split())
    return pids


def broker_pid() -> int:
    """Return the pid of the Tansu child, found among this process's children."""
    binary = str(tansu_binary())
    for pid in child_pids():
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            if command == binary:
                return pid
    raise RuntimeError("the Tansu broker process was not found among the children")


def machine_cpu_seconds() -> tuple[float, float]:
    """Return the busy and total CPU seconds of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # The first eight are user, nice, system, idle, iowait, irq, softirq and steal.
    # Guest time is already counted in user.
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return (total - idle) / CLOCK_TICKS_PER_SECOND, total / CLOCK_TICKS_PER_SECOND


async def redis_cpu_seconds(client: Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# Kafka


async def create_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def phone_for(number: int) -> str:
    """Return a distinct Ecuadorian mobile number in E.164 for `number` below 100 million."""
    return f"+5939{number % 100_000_000:08d}"


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    partitions: int,
    ids: Sequence[str],
    first_phone: int,
    rate: float,
) -> list[Request]:
    """Publish one request per id, round-robin over the partitions, `rate` per second.

    A `rate` of 0 publishes them all at once.
    """
    requests: list[Request] = []
    pending = []
    started = time.monotonic()
    for index, verification_id in enumerate(ids):
        if rate > 0:
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        phone = phone_for(first_phone + index)
        published_at_ns = time.time_ns()
        body = {"Id": verification_id, "Phone": phone, "published_at_ns": published_at_ns}
        pending.append(
            await producer.send(topic, json.dumps(body).encode(), partition=index % partitions)
        )
        requests.append(Request(verification_id, phone, published_at_ns))
    await asyncio.gather(*pending)
    return requests


# The emulator


async def emulator_messages(control: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await control.get("/_emulator/messages")
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def verification_id_of(message: dict[str, Any]) -> str | None:
    """Return the verification id in the StatusCallback URL the worker sent, or None."""
    callback = message.get("status_callback")
    if not callback:
        return None
    values = parse_qs(urlsplit(callback).query).get("verification_id")
    return values[0] if values else None


async def wait_for_messages(
    control: httpx.AsyncClient,
    ids: set[str],
    worker: subprocess.Popen[bytes],
    timeout_seconds: float,
) -> dict[str, dict[str, Any]]:
    """Wait until the emulator contains a message for every id, and return them by id.

    Raises TimeoutError, naming how many are missing, after `timeout_seconds`.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    found: dict[str, dict[str, Any]] = {}
    while True:
        for message in await emulator_messages(control):
            verification_id = verification_id_of(message)
            if verification_id in ids:
                found.setdefault(verification_id, message)
        if len(found) == len(ids):
            return found
        if worker.poll() is not None:
            raise RuntimeError(
                f"the worker exited with status {worker.returncode} before the emulator "
                "received every message: see its log"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"the emulator received {len(found)} of {len(ids)} messages "
                f"within {timeout_seconds} s"
            )
        await asyncio.sleep(poll_interval(len(ids) - len(found), len(found), started))


def poll_interval(missing: int, found: int, started: float) -> float:
    """Return the wait before the next poll: the expected time to the last message, bounded."""
    if found == 0:
        return MAX_POLL_INTERVAL_SECONDS
    per_second = found / max(time.monotonic() - started, 1e-3)
    expected = missing / per_second
    return min(max(expected, MIN_POLL_INTERVAL_SECONDS), MAX_POLL_INTERVAL_SECONDS)


# Redis


def parse_time_ns(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def batched(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def read_records(
    client: Redis, key_prefix: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Return the stored record of each id that has one, read with MGET in batches."""
    records: dict[str, dict[str, Any]] = {}
    for batch in batched(ids, REDIS_BATCH):
        values = await client.mget(
            [f"{key_prefix}:{{{verification_id}}}" for verification_id in batch]
        )
        for verification_id, value in zip(batch, values, strict=True):
            if value is not None:
                records[verification_id] = json.loads(value)
    return records


async def wait_for_accepted_records(
    client: Redis, key_prefix: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Return each id's record once all of them name their Twilio message.

    The emulator records a message before its response reaches the worker, so the
    worker may still be writing the last records when the emulator has them all.
    Raises TimeoutError after `RECORDS_TIMEOUT_SECONDS`.
    """
    deadline = time.monotonic() + RECORDS_TIMEOUT_SECONDS
    records: dict[str, dict[str, Any]] = {}
    missing = list(ids)
    while True:
        records.update(await read_records(client, key_prefix, missing))
        missing = [key for key in missing if not records.get(key, {}).get("message_sid")]
        if not missing:
            return records
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(missing)} Redis records still name no message after "
                f"{RECORDS_TIMEOUT_SECONDS} s, such as {missing[0]}"
            )
        await asyncio.sleep(0.05)


async def delete_keys(client: Redis, key_prefix: str) -> int:
    deleted = 0
    keys: list[bytes] = []
    async for key in client.scan_iter(match=f"{key_prefix}:*", count=1000):
        keys.append(key)
        if len(keys) >= 1000:
            deleted += await client.unlink(*keys)
            keys.clear()
    if keys:
        deleted += await client.unlink(*keys)
    return deleted


# One run


@dataclass(frozen=True, slots=True)
class Stack:
    """The broker, the emulator, the Redis client and the options that every run shares."""

    broker: TansuBroker
    broker_pid: int
    emulator: subprocess.Popen[bytes]
    control: httpx.AsyncClient
    emulator_url: str
    redis: Redis
    arguments: argparse.Namespace
    log_directory: Path


def worker_environment(stack: Stack, run_id: str, max_in_flight: int) -> dict[str, str]:
    return {
        "KAFKA_SERVER": stack.broker.bootstrap_servers,
        "KAFKA_TOPIC": f"bench-{run_id}",
        "KAFKA_GROUP_ID": f"bench-group-{run_id}",
        "KAFKA_PRODUCER_IDEMPOTENCE": "false",
        "REDIS_CONNECTION": REDIS_URL,
        "REDIS_KEY_PREFIX": f"bench-{run_id}",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": SENDER,
        "TWILIO_API_BASE_URL": stack.emulator_url,
        "TWILIO_MAX_MPS": "0",
        # The emulator sends no callbacks, and nothing listens on this loopback port.
        "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "CODE_SECRET": CODE_SECRET,
        "MAX_SENDS_PER_PHONE_PER_HOUR": "0",
        "MAX_SENDS_PER_PHONE_PER_DAY": "0",
        "MAX_IN_FLIGHT": str(max_in_flight),
        # The worker serves /metrics as in production, on a port of its own.
        "METRICS_PORT": str(free_port()),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
    }


async def cpu_snapshot(stack: Stack, worker_pid: int) -> CpuSnapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    busy, total = machine_cpu_seconds()
    return CpuSnapshot(
        worker=process_cpu_seconds(worker_pid),
        emulator=process_cpu_seconds(stack.emulator.pid),
        broker=process_cpu_seconds(stack.broker_pid),
        redis=await redis_cpu_seconds(stack.redis),
        bench=usage.ru_utime + usage.ru_stime,
        machine_busy=busy,
        machine_total=total,
        taken_at=time.monotonic(),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the value at `fraction` (0 to 1) of the sorted values, by nearest rank."""
    ordered = sorted(values)
    rank = min(max(math.ceil(fraction * len(ordered)), 1), len(ordered))
    return ordered[rank - 1]


def check_matches(messages: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]) -> None:
    """Raise unless each emulator message is the one the worker recorded for its id."""
    for verification_id, message in messages.items():
        stored_sid = records[verification_id].get("message_sid")
        if stored_sid != message["sid"]:
            raise RuntimeError(
                f"verification {verification_id}: the emulator has {message['sid']} but "
                f"Redis has {stored_sid}; a request was sent twice or not recorded"
            )


def summarize(
    label: str,
    max_in_flight: int,
    requests: Sequence[Request],
    records: dict[str, dict[str, Any]],
    before: CpuSnapshot,
    after: CpuSnapshot,
) -> RunResult:
    latencies_ms: list[float] = []
    service_ms: list[float] = []
    last_accept_ns = 0
    for request in requests:
        record = records[request.verification_id]
        accepted_ns = parse_time_ns(record["history"][0]["recorded_at"])
        created_ns = parse_time_ns(record["created_at"])
        latencies_ms.append((accepted_ns - request.published_at_ns) / 1e6)
        service_ms.append((accepted_ns - created_ns) / 1e6)
        last_accept_ns = max(last_accept_ns, accepted_ns)
    first_publish_ns = min(request.published_at_ns for request in requests)
    seconds = (last_accept_ns - first_publish_ns) / 1e9
    worker_cpu = after.worker - before.worker
    machine_total = after.machine_total - before.machine_total
    return RunResult(
        label=label,
        max_in_flight=max_in_flight,
        count=len(requests),
        seconds=round(seconds, 3),
        per_second=round(len(requests) / seconds, 1),
        latency_p50_ms=round(percentile(latencies_ms, 0.50), 1),
        latency_p99_ms=round(percentile(latencies_ms, 0.99), 1),
        latency_max_ms=round(max(latencies_ms), 1),
        service_p50_ms=round(percentile(service_ms, 0.50), 1),
        worker_cpu_seconds=round(worker_cpu, 2),
        worker_cpu_ms_per_verification=round(worker_cpu * 1000 / len(requests), 3),
        worker_core_share=round(worker_cpu / (after.taken_at - before.taken_at), 3),
        emulator_cpu_seconds=round(after.emulator - before.emulator, 2),
        broker_cpu_seconds=round(after.broker - before.broker, 2),
        redis_cpu_seconds=round(after.redis - before.redis, 2),
        bench_cpu_seconds=round(after.bench - before.bench, 2),
        machine_busy_share=round(
            (after.machine_busy - before.machine_busy) / machine_total if machine_total else 0.0,
            3,
        ),
    )


async def warm_up(
    stack: Stack,
    producer: AIOKafkaProducer,
    topic: str,
    run_id: str,
    worker: subprocess.Popen[bytes],
) -> None:
    """Send two requests per partition and wait for them, so the group has joined."""
    partitions = stack.arguments.partitions
    ids = [f"warm-{run_id}-{index}" for index in range(2 * partitions)]
    await publish(producer, topic, partitions, ids, secrets.randbelow(10**7), 0)
    await wait_for_messages(stack.control, set(ids), worker, WARM_UP_TIMEOUT_SECONDS)
    response = await stack.control.delete("/_emulator/messages")
    response.raise_for_status()


async def run_once(stack: Stack, label: str, max_in_flight: int, count: int) -> RunResult:
    arguments = stack.arguments
    run_id = f"{label}-{uuid.uuid4().hex[:8]}"
    environment = worker_environment(stack, run_id, max_in_flight)
    environment.update(
        (name.strip(), value)
        for name, _, value in (setting.partition("=") for setting in arguments.worker_setting)
    )
    topic, key_prefix = environment["KAFKA_TOPIC"], environment["REDIS_KEY_PREFIX"]
    await create_topic(stack.broker.bootstrap_servers, topic, arguments.partitions)

    worker = start_worker(environment, stack.log_directory / f"worker-{label}.log")
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers, enable_idempotence=False, linger_ms=5
    )
    profiler: subprocess.Popen[bytes] | None = None
    try:
        await producer.start()
        await warm_up(stack, producer, topic, run_id, worker)
        if arguments.py_spy_output is not None and label == "main":
            profiler = start_py_spy(
                worker.pid,
                arguments.py_spy_output,
                arguments.py_spy_format,
                stack.log_directory / "py-spy.log",
            )

        ids = [f"bench-{run_id}-{index}" for index in range(count)]
        before = await cpu_snapshot(stack, worker.pid)
        requests = await publish(
            producer,
            topic,
            arguments.partitions,
            ids,
            secrets.randbelow(10**7) * 10,
            arguments.publish_rate,
        )
        messages = await wait_for_messages(
            stack.control, set(ids), worker, arguments.timeout_seconds
        )
        records = await wait_for_accepted_records(stack.redis, key_prefix, ids)
        after = await cpu_snapshot(stack, worker.pid)
        if profiler is not None:
            stop_process(profiler, signal.SIGINT)
            profiler = None

        check_matches(messages, records)
        return summarize(label, max_in_flight, requests, records, before, after)
    finally:
        if profiler is not None:
            stop_process(profiler, signal.SIGINT)
        await producer.stop()
        stop_process(worker)
        await delete_keys(stack.redis, key_prefix)
        with contextlib.suppress(httpx.HTTPError):
            await stack.control.delete("/_emulator/messages")


# Output


COLUMNS = (
    ("run", "label", "{}"),
    ("in flight", "max_in_flight", "{}"),
    ("count", "count", "{}"),
    ("seconds", "seconds", "{:.2f}"),
    ("verif/s", "per_second", "{:.1f}"),
    ("p50 ms", "latency_p50_ms", "{:.0f}"),
    ("p99 ms", "latency_p99_ms", "{:.0f}"),
    ("service p50 ms", "service_p50_ms", "{:.0f}"),
    ("worker CPU ms/verif", "worker_cpu_ms_per_verification", "{:.2f}"),
    ("worker cores", "worker_core_share", "{:.2f}"),
    ("emulator CPU s", "emulator_cpu_seconds", "{:.2f}"),
    ("broker CPU s", "broker_cpu_seconds", "{:.2f}"),
    ("Redis CPU s", "redis_cpu_seconds", "{:.2f}"),
    ("bench CPU s", "bench_cpu_seconds", "{:.2f}"),
    ("machine busy", "machine_busy_share", "{:.0%}"),
)


def table(results: Iterable[RunResult]) -> str:
    rows = [[heading for heading, _, _ in COLUMNS]]
    for result in results:
        values = asdict(result)
        rows.append([form.format(values[field]) for _, field, form in COLUMNS])
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(lines)


def report(results: list[RunResult], arguments: argparse.Namespace) -> None:
    main = results[0]
    print(table(results))
    ratio = None
    measured_ratio = "not measured"
    if len(results) > 1:
        ratio = round(main.per_second / results[1].per_second, 1)
        measured_ratio = f"measured {ratio}x"
        print(f"throughput ratio, MAX_IN_FLIGHT={main.max_in_flight} to 1: {ratio}x")
    print(
        f"targets: >= {TARGET_PER_SECOND} verif/s (measured {main.per_second}), "
        f">= {TARGET_RATIO}x MAX_IN_FLIGHT=1 ({measured_ratio}), "
        f"<= {TARGET_CPU_MS_PER_VERIFICATION} ms worker CPU per verification "
        f"(measured {main.worker_cpu_ms_per_verification})"
    )
    line = {
        "benchmark": "worker",
        "response_delay_ms": arguments.response_delay_ms,
        "partitions": arguments.partitions,
        "publish_rate": arguments.publish_rate,
        "cpus": os.cpu_count(),
        "runs": [asdict(result) for result in results],
        "throughput_ratio": ratio,
    }
    print(json.dumps(line))


async def run(arguments: argparse.Namespace) -> list[RunResult]:
    log_directory = Path(tempfile.mkdtemp(prefix="worker-benchmark-"))
    broker = TansuBroker(log_path=log_directory / "tansu.log")
    emulator: subprocess.Popen[bytes] | None = None
    redis = Redis.from_url(REDIS_URL)
    succeeded = False
    try:
        broker.start()
        emulator, emulator_url = start_emulator(
            arguments.response_delay_ms, log_directory / "emulator.log"
        )
        async with httpx.AsyncClient(base_url=emulator_url, timeout=30, trust_env=False) as control:
            stack = Stack(
                broker=broker,
                broker_pid=broker_pid(),
                emulator=emulator,
                control=control,
                emulator_url=emulator_url,
                redis=redis,
                arguments=arguments,
                log_directory=log_directory,
            )
            results = [await run_once(stack, "main", arguments.max_in_flight, arguments.count)]
            if arguments.baseline_count:
                results.append(await run_once(stack, "one-at-a-time", 1, arguments.baseline_count))
        succeeded = True
        return results
    finally:
        if emulator is not None:
            stop_process(emulator)
        broker.stop()
        await redis.aclose()
        # The logs of a failed run are kept, because its error points at them.
        if arguments.keep_logs or not succeeded:
            print(f"logs: {log_directory}", file=sys.stderr)
        else:
            shutil.rmtree(log_directory, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    results = asyncio.run(run(arguments))
    report(results, arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
