"""The webhook process (`python -m entrypoints.webhook`): the HTTP app served by uvicorn."""

import asyncio
import logging
import os
from types import FrameType

import uvicorn
from dependency_injector import providers

from entrypoints.container import Container
from entrypoints.http.app import create_app
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings
from entrypoints.startup import load_settings
from entrypoints.tracing import configure_tracing

logger = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """A uvicorn server that exits with status 0 after a graceful stop.

    uvicorn re-raises the stopping signal once it has shut down, which makes the
    process end with -15 after SIGTERM and looks like a crash to supervisors. A second
    signal still stops at once.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


def build_server(settings: Settings, container: Container | None = None) -> uvicorn.Server:
    """Return a uvicorn server for the app, not yet started."""
    container = container or Container(settings=providers.Object(settings))
    config = uvicorn.Config(
        create_app(container),
        host=settings.WEBHOOK_HOST,
        port=settings.WEBHOOK_PORT,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    return GracefulServer(config)


def main() -> None:
    settings = load_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    logger.info(
        "webhook_starting",
        extra={"host": settings.WEBHOOK_HOST, "port": settings.WEBHOOK_PORT},
    )
    # The OTEL_* variables configure the OpenTelemetry SDK, not this service.
    provider = configure_tracing(os.environ, "verification-webhook")
    try:
        asyncio.run(build_server(settings).serve())
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
