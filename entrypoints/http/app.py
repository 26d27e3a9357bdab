"""Builds the Litestar app from the container: routes, state, error mapping, lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import Scope

from adapters.observability.health import ReadinessCheck, failed_dependencies, redis_ping
from adapters.observability.metrics import render_metrics
from entrypoints.container import Container, resolved
from entrypoints.http.callbacks import twilio_status
from entrypoints.http.dashboard import dashboard_page, dashboard_script, dashboard_style
from entrypoints.http.errors import EXCEPTION_HANDLERS
from entrypoints.http.hub import event_hub_socket, hub_lifespan
from entrypoints.http.verifications import VerificationController

logger = logging.getLogger(__name__)


@get("/healthz", status_code=HTTP_200_OK)
async def healthz() -> dict[str, str]:
    """Tell that the process is alive; dependencies are not checked here."""
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request[object, object, object]) -> Response[dict[str, object]]:
    """Check the dependencies the webhook needs: 200 when Redis responds to PING, else 503."""
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    failures = await failed_dependencies(checks)
    if failures:
        return Response(
            {"status": "unavailable", "failures": failures},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response({"status": "ok"}, status_code=HTTP_200_OK)


@get("/metrics", include_in_schema=False)
async def metrics() -> Response[bytes]:
    """Return the process's metrics in the Prometheus text format."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type, status_code=HTTP_200_OK)


def create_app(container: Container) -> Litestar:
    """Build the app on the container's use cases; resources open at startup."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = container.settings()
        token = settings.API_TOKEN
        app.state.api_token = token.get_secret_value().encode() if token else None
        app.state.record_delivery_status = await resolved(container.record_delivery_status())
        app.state.check_verification = await resolved(container.check_verification())
        app.state.manage_verification = await resolved(container.manage_verification())
        app.state.signature_validator = container.signature_validator()
        # The webhook uses no Kafka broker, so Redis is its only dependency to check.
        app.state.readiness_checks = {"redis": redis_ping(lambda: resolved(container.redis()))}
        if token is None:
            logger.warning("api_token_unset", extra={"fix": "set API_TOKEN in production"})
        try:
            yield
        finally:
            await resolved(container.shutdown_resources())

    return Litestar(
        route_handlers=[
            twilio_status,
            healthz,
            readyz,
            metrics,
            VerificationController,
            event_hub_socket,
            dashboard_page,
            dashboard_script,
            dashboard_style,
        ],
        lifespan=[lifespan, hub_lifespan(container)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[_log_unhandled],
        logging_config=None,
    )


async def _log_unhandled(error: Exception, scope: Scope) -> None:
    # Litestar returns 500 by itself, and this logs the cause in the service's own log.
    if not isinstance(error, HTTPException):
        logger.error("request_failed", exc_info=error, extra={"path": scope.get("path")})
