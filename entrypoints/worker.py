"""The worker process (`python -m entrypoints.worker`): sends codes for requests on Kafka."""

import asyncio
import logging
import os
import signal

from dependency_injector import providers

from entrypoints.container import Container, resolved
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings
from entrypoints.startup import load_settings

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, container: Container | None = None) -> None:
    """Consume requests until SIGTERM or SIGINT, then finish the message in hand and stop.

    A second signal ends the process at once, without committing.
    """
    container = container or Container(settings=providers.Object(settings))
    consumer = await resolved(container.request_consumer())
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("worker_exit_now", extra={"signal": signal.Signals(signum).name})
            os._exit(128 + signum)
        logger.info("worker_stopping", extra={"signal": signal.Signals(signum).name})
        consumer.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await consumer.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await resolved(container.shutdown_resources())
        logger.info("worker_stopped")


def main() -> None:
    settings = load_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    logger.info(
        "worker_starting",
        extra={
            "kafka_server": settings.KAFKA_SERVER,
            "topic": settings.KAFKA_TOPIC,
            "group_id": settings.KAFKA_GROUP_ID,
        },
    )
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
