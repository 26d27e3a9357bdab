"""Error responses of the HTTP app, and the one table from core errors to status codes."""

import logging

from litestar import Request, Response
from litestar.exceptions import ValidationException
from litestar.status_codes import HTTP_400_BAD_REQUEST, HTTP_503_SERVICE_UNAVAILABLE

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


def invalid_request(
    request: Request[object, object, object], error: ValidationException
) -> Response[dict[str, str]]:
    """Return 400 naming each invalid field of the request, in the app's error shape."""
    problems = [_describe_problem(item) for item in (error.extra or []) if isinstance(item, dict)]
    detail = "; ".join(problems) or str(error.detail)
    logger.info("request_invalid", extra={"path": request.url.path, "error": detail})
    return error_response(HTTP_400_BAD_REQUEST, f"invalid request: {detail}")


def _describe_problem(item: dict[str, object]) -> str:
    key, message = item.get("key"), str(item.get("message", "invalid"))
    if key == "data" and message == "'data'":
        # Litestar's message for a request without a body.
        return "the JSON body is missing"
    return f"{key}: {message}" if key else message


EXCEPTION_HANDLERS = {StoreUnavailable: store_unavailable, ValidationException: invalid_request}
