"""A route middleware that runs each request in a SERVER span with HTTP attributes.

The attributes follow OpenTelemetry's HTTP semantic conventions. The middleware sits
outside the app's exception handlers, so the span records the status code that they
send for errors too.
"""

from typing import cast

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

tracer = trace.get_tracer(__name__)
_propagator = TraceContextTextMapPropagator()


class ServerSpanMiddleware(ASGIMiddleware):
    """Runs the route in a current SERVER span named after the method and the route.

    The span continues a `traceparent` request header, as a proxy that traces may
    send. Without one, it starts a new trace. The query string stays out of the
    attributes because it may carry ids. Only 5xx responses mark the span as failed.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        http_scope = cast(HTTPScope, scope)  # `scopes` lets only HTTP requests in
        # Litestar stores the matched route's template, such as `/twilio/status`, in the scope.
        route = http_scope.get("path_template") or http_scope["path"]
        method = http_scope["method"]
        with tracer.start_as_current_span(
            f"{method} {route}",
            context=_propagator.extract(Headers.from_scope(scope)),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": http_scope["path"],
                "url.scheme": http_scope["scheme"],
            },
        ) as span:

            async def send_recording_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    _record_status(span, message["status"])
                await send(message)

            await next_app(scope, receive, send_recording_status)


def _record_status(span: trace.Span, status_code: int) -> None:
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_attribute("error.type", str(status_code))
        span.set_status(trace.StatusCode.ERROR)
