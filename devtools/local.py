"""Runs the whole service on this machine with embedded settings (`make run`).

Starts, all on 127.0.0.1: Redis (the machine's on 6379, or a new one), the Tansu
broker, the Twilio API emulator, a printing WebSocket hub, the webhook and the
worker. Then it publishes one demo request and prints what happens, until Ctrl-C.
The credentials below are for the emulator only and are not secrets.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from devtools.hub import start_printing_hub
from devtools.ports import wait_for_port_async
from devtools.publish import publish_request
from devtools.tansu import TansuBroker

REPOSITORY = Path(__file__).resolve().parents[1]
STATE_DIRECTORY = REPOSITORY / ".local"
BROKER_PORT = 9092
EMULATOR_PORT = 4010
HUB_PORT = 4003
WEBHOOK_PORT = 4002
METRICS_PORT = 9102
TOPIC = "Verification"
TOPIC_PARTITIONS = 3
DEMO_PHONE = "+593991234567"

LOCAL_ENVIRONMENT = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "local-emulator-auth-token",
    "TWILIO_PHONE_NUMBER": "+14155550100",
    "TWILIO_API_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORT}",
    "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{WEBHOOK_PORT}",
    "WEBHOOK_PORT": str(WEBHOOK_PORT),
    "METRICS_PORT": str(METRICS_PORT),
    "REDIS_CONNECTION": "127.0.0.1:6379",
    "REDIS_KEY_PREFIX": "local-verification",
    "MESSAGES_USERS_URL": f"ws://127.0.0.1:{HUB_PORT}",
    "CODE_SECRET": "local-demo-code-secret-not-for-production",
    "DEFAULT_REGION": "EC",
    "KAFKA_TOPIC": TOPIC,
    # Tansu, the local broker, rejects the idempotent producer.
    "KAFKA_PRODUCER_IDEMPOTENCE": "false",
    "LOG_FORMAT": "console",
}


def say(line: str) -> None:
    print(line, flush=True)


class Children:
    """Child processes started by the local run, stopped in reverse order."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, arguments: list[str], environment: dict[str, str]) -> None:
        log_path = STATE_DIRECTORY / f"{name}.log"
        with open(log_path, "ab") as log:
            # A session of its own keeps the terminal's Ctrl-C away from the child, so
            # each child gets exactly one SIGTERM from `stop` and shuts down gracefully.
            process = subprocess.Popen(
                arguments,
                cwd=REPOSITORY,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._running.append((name, process))
        say(f"started {name} (pid {process.pid}), log: {log_path.relative_to(REPOSITORY)}")

    def check(self) -> None:
        for name, process in self._running:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode}: see .local/{name}.log"
                )

    def stop(self) -> None:
        """Stop each child with SIGTERM; a second Ctrl-C kills the ones still running."""
        try:
            while self._running:
                name, process = self._running.pop()
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=40)
                    except subprocess.TimeoutExpired:
                        process.kill()
                say(f"stopped {name}")
        except KeyboardInterrupt:
            for _, process in self._running:
                process.kill()
            self._running.clear()
            say("killed the remaining children")


async def create_topic(bootstrap_servers: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, TOPIC_PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def print_emulator_messages(base_url: str) -> None:
    """Show each WhatsApp message the emulator receives, as the person's phone would."""
    seen: set[str] = set()
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get("/_emulator/messages")
                for message in response.json().get("messages", []):
                    if message["sid"] not in seen:
                        seen.add(message["sid"])
                        say(
                            f"emulator received {message['sid']} to {message['to']}: "
                            f"{message['body']!r}"
                        )
            await asyncio.sleep(0.5)


def check_ports_free() -> None:
    """Raise `RuntimeError` naming the first local-run port that something already uses."""
    ports = {
        BROKER_PORT: "broker",
        EMULATOR_PORT: "Twilio emulator",
        HUB_PORT: "hub",
        WEBHOOK_PORT: "webhook",
        METRICS_PORT: "worker's metrics",
    }
    for port, role in ports.items():
        if not _port_is_free(port):
            raise RuntimeError(
                f"port {port} for the {role} is in use on 127.0.0.1: stop the process that uses it "
                f"(`ss -ltnp 'sport = :{port}'` shows it), for example a previous local run"
            )


async def run_services(children: Children, broker: TansuBroker) -> None:
    await create_topic(broker.bootstrap_servers)
    say(f"broker on {broker.bootstrap_servers}, topic {TOPIC}, {TOPIC_PARTITIONS} partitions")
    environment = {
        # Spans go to each process's log unless the caller chose an exporter.
        "OTEL_TRACES_EXPORTER": "console",
        **os.environ,
        **LOCAL_ENVIRONMENT,
        "KAFKA_SERVER": broker.bootstrap_servers,
    }
    hub = await start_printing_hub(HUB_PORT, say)
    say(f"hub listening on ws://127.0.0.1:{HUB_PORT}")
    emulator_arguments = [
        sys.executable,
        "-m",
        "twilio_emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(EMULATOR_PORT),
    ]
    children.start("emulator", emulator_arguments, environment)
    await wait_for_port_async(EMULATOR_PORT, 20)
    children.start("webhook", [sys.executable, "-m", "entrypoints.webhook"], environment)
    children.start("worker", [sys.executable, "-m", "entrypoints.worker"], environment)
    await wait_for_port_async(WEBHOOK_PORT, 20)

    watcher = asyncio.create_task(print_emulator_messages(f"http://127.0.0.1:{EMULATOR_PORT}"))
    await publish_request(broker.bootstrap_servers, TOPIC, "demo-user-1", DEMO_PHONE)
    say(json.dumps({"published": {"Id": "demo-user-1", "Phone": DEMO_PHONE}}))
    say(
        "\nThe service is running. Publish another request from a second terminal with:\n"
        "  .venv/bin/python -m devtools.publish --id user-42 --phone 0991234567\n"
        "Logs are in .local/. Press Ctrl-C to stop.\n"
    )
    try:
        await wait_for_stop(children)
    finally:
        watcher.cancel()
        # The services stop before the hub, so they can still send their last events.
        await asyncio.to_thread(children.stop)
        hub.close()


async def wait_for_stop(children: Children) -> None:
    """Return on SIGTERM; Ctrl-C arrives as KeyboardInterrupt; raise if a child died."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        children.check()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1)
    say("stopping")


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def main() -> None:
    STATE_DIRECTORY.mkdir(exist_ok=True)
    children = Children()
    broker = TansuBroker(port=BROKER_PORT, log_path=STATE_DIRECTORY / "broker.log")
    try:
        check_ports_free()
        subprocess.run([str(REPOSITORY / "scripts" / "ensure-redis")], check=True)
        say("Redis answers on 127.0.0.1:6379")
        broker.start()
        asyncio.run(run_services(children, broker))
    except KeyboardInterrupt:
        say("stopping")
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        say(f"local run failed: {error}")
        sys.exit(1)
    finally:
        children.stop()
        broker.stop()


if __name__ == "__main__":
    main()
