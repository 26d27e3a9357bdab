"""The worker process (`python -m entrypoints.worker`): sends codes for requests on Kafka."""

import asyncio
import logging
import os
import signal

from dependency_injector import providers

from adapters.kafka.consumer import KafkaRequestConsumer
from adapters.observability.health import ReadinessCheck, redis_ping
from entrypoints.container import Container, resolved
from entrypoints.logs import configure_logging
from entrypoints.metrics_server import MetricsServer
from entrypoints.settings import Settings
from entrypoints.startup import load_settings
from entrypoints.tracing import configure_tracing

logger = logging.getLogger(__name__)


async def run_worker(settings: Settings, container: Container | None = None) -> None:
    """Consume requests until SIGTERM or SIGINT, then finish the messages in hand and stop.

    A second signal ends the process at once, without committing.
    """
    container = container or Container(settings=providers.Object(settings))
    loop = asyncio.get_running_loop()
    consumer: KafkaRequestConsumer | None = None
    stopped_early = False
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen, stopped_early
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("worker_exit_now", extra={"signal": signal.Signals(signum).name})
            os._exit(128 + signum)
        logger.info("worker_stopping", extra={"signal": signal.Signals(signum).name})
        if consumer is None:
            stopped_early = True
        else:
            consumer.request_stop()

    async def check_broker() -> None:
        if consumer is None:
            raise RuntimeError("the Kafka consumer is not built yet")
        await consumer.check_broker()

    checks: dict[str, ReadinessCheck] = {
        "redis": redis_ping(lambda: resolved(container.redis())),
        "kafka": check_broker,
    }
    metrics_server = None
    if settings.METRICS_PORT:
        metrics_server = MetricsServer(settings.METRICS_HOST, settings.METRICS_PORT, checks)

    # Installed before any connection opens, so a signal during start-up is honoured.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if metrics_server is not None:
            await metrics_server.start()
        consumer = await resolved(container.request_consumer())
        if stopped_early:
            consumer.request_stop()
        await consumer.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if metrics_server is not None:
            await metrics_server.stop()
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
    # The OTEL_* variables configure the OpenTelemetry SDK, not this service, so they
    # are read here rather than through Settings.
    provider = configure_tracing(os.environ, "verification-worker")
    try:
        asyncio.run(run_worker(settings))
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
