"""The worker's small HTTP server: /metrics for Prometheus, /healthz and /readyz for probes."""

import logging
from collections.abc import Mapping

from aiohttp import web

from adapters.observability.health import ReadinessCheck, failed_dependencies
from adapters.observability.metrics import render_metrics

logger = logging.getLogger(__name__)


class MetricsServer:
    """Serves /metrics, /healthz and /readyz in the running event loop until `stop()`.

    /readyz returns 200 when every check in `checks` passes within its timeout, and
    503 with `{"status": "unavailable", "failures": {name: error}}` otherwise.
    """

    def __init__(self, host: str, port: int, checks: Mapping[str, ReadinessCheck]) -> None:
        self._host = host
        self._port = port
        self._checks = checks
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    @property
    def port(self) -> int:
        """The bound port, which differs from the requested one when that was 0."""
        server = self._runner.server
        addresses = self._runner.addresses
        return int(addresses[0][1]) if server is not None and addresses else self._port

    async def start(self) -> None:
        """Bind and start serving; raise `OSError` naming the address when it is taken."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise OSError(
                error.errno,
                f"the metrics server could not listen on {self._host}:{self._port} "
                f"({error.strerror}): set METRICS_PORT to a free port, or to 0 to turn it off",
            ) from error
        logger.info("metrics_server_started", extra={"host": self._host, "port": self.port})

    async def stop(self) -> None:
        await self._runner.cleanup()
        logger.info("metrics_server_stopped")

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = render_metrics()
        # Set as a header, because aiohttp's content_type argument rejects parameters.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        failures = await failed_dependencies(self._checks)
        if failures:
            return web.json_response({"status": "unavailable", "failures": failures}, status=503)
        return web.json_response({"status": "ok"})
