"""The webhook process (`python -m entrypoints.webhook`): Twilio status callbacks and health."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from urllib.parse import parse_qs, parse_qsl

import uvicorn
from dependency_injector import providers
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import Scope

from adapters.twilio.signature import TwilioSignatureValidator
from application.errors import StoreUnavailable
from application.record_delivery_status import DeliveryReport, RecordDeliveryStatus
from domain.verification import MAX_VERIFICATION_ID_LENGTH
from entrypoints.container import Container, resolved
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings
from entrypoints.startup import load_settings

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_CALLBACK_BYTES = 64 * 1024


class MalformedCallback(ValueError):
    """A status callback body that is not a Twilio status report."""


def _error(status_code: int, message: str) -> Response[dict[str, str]]:
    return Response({"error": message}, status_code=status_code)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedCallback(f"the body is not valid form data: {error}") from error


def _report_from(fields: dict[str, str], query: str) -> DeliveryReport:
    message_sid = fields.get("MessageSid") or fields.get("SmsSid")
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    if not message_sid:
        raise MalformedCallback("MessageSid is missing")
    if not status:
        raise MalformedCallback("MessageStatus is missing")
    ids = parse_qs(query).get("verification_id", [])
    verification_id = ids[0] if ids and len(ids[0]) <= MAX_VERIFICATION_ID_LENGTH else None
    return DeliveryReport(
        message_sid=message_sid[:64],
        status=status[:32],
        verification_id=verification_id,
        error_code=fields.get("ErrorCode") or None,
        error_message=fields.get("ErrorMessage") or None,
    )


@post(
    ["/twilio/status", "/"],
    status_code=HTTP_200_OK,
    request_max_body_size=MAX_CALLBACK_BYTES,
)
async def twilio_status(request: Request[object, object, State]) -> Response[object]:
    """Apply a signed Twilio status callback. `POST /` serves existing deployments."""
    content_type, _ = request.content_type
    if content_type != FORM_CONTENT_TYPE:
        return _error(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"expected {FORM_CONTENT_TYPE}, got {content_type or 'no content type'}",
        )
    body = await request.body()
    try:
        pairs = _parse_form(body)
    except MalformedCallback as error:
        return _error(HTTP_400_BAD_REQUEST, str(error))

    validator: TwilioSignatureValidator = request.app.state.signature_validator
    query = request.url.query or ""
    if not validator.is_valid(
        request.url.path, query, pairs, request.headers.get("X-Twilio-Signature")
    ):
        logger.warning(
            "callback_signature_invalid",
            extra={
                "path": request.url.path,
                "client": request.client.host if request.client else None,
            },
        )
        return _error(HTTP_403_FORBIDDEN, "missing or invalid X-Twilio-Signature")

    try:
        report = _report_from(dict(pairs), query)
    except MalformedCallback as error:
        logger.warning("callback_malformed", extra={"error": str(error)})
        return _error(HTTP_400_BAD_REQUEST, str(error))

    use_case: RecordDeliveryStatus = request.app.state.record_delivery_status
    try:
        outcome = await use_case.execute(report)
    except StoreUnavailable as error:
        logger.warning("callback_store_unavailable", extra={"error": repr(error)})
        return _error(HTTP_503_SERVICE_UNAVAILABLE, "the verification store is unavailable")
    logger.debug(
        "callback_handled",
        extra={"message_sid": report.message_sid, "outcome": str(outcome)},
    )
    return Response(None, status_code=HTTP_204_NO_CONTENT)


@get("/healthz", status_code=HTTP_200_OK)
async def healthz() -> dict[str, str]:
    """Tell that the process is alive; dependencies are not checked here."""
    return {"status": "ok"}


def create_app(container: Container) -> Litestar:
    """Build the Litestar app on the container's use cases; resources open at startup."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.record_delivery_status = await resolved(container.record_delivery_status())
        app.state.signature_validator = container.signature_validator()
        try:
            yield
        finally:
            await resolved(container.shutdown_resources())

    return Litestar(
        route_handlers=[twilio_status, healthz],
        lifespan=[lifespan],
        after_exception=[_log_unhandled],
        logging_config=None,
    )


async def _log_unhandled(error: Exception, scope: Scope) -> None:
    # Litestar returns 500 by itself, and this logs the cause in the service's own log.
    if not isinstance(error, HTTPException):
        logger.error("request_failed", exc_info=error, extra={"path": scope.get("path")})


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
    asyncio.run(build_server(settings).serve())


if __name__ == "__main__":
    main()
