"""Error responses of the HTTP app, and the one table from core errors to status codes."""

import logging

from litestar import Request, Response
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from application.errors import StoreUnavailable

logger = logging.getLogger(__name__)


def error_response(status_code: int, message: str) -> Response[dict[str, str]]:
    return Response({"error": message}, status_code=status_code)


def store_unavailable(
    request: Request[object, object, object], error: Exception
) -> Response[dict[str, str]]:
    """Return 503 while Redis is unreachable, so callers and Twilio can try again."""
    logger.warning(
        "request_store_unavailable", extra={"path": request.url.path, "error": repr(error)}
    )
    return error_response(HTTP_503_SERVICE_UNAVAILABLE, "the verification store is unavailable")


EXCEPTION_HANDLERS = {StoreUnavailable: store_unavailable}
