"""The service's Prometheus metrics, defined once on one registry that /metrics renders."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# A registry of its own, so /metrics shows the service's metrics and tests read them
# without the default registry's process and platform collectors.
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS_CONSUMED = Counter(
    "verification_requests_consumed",
    "Request records handled by the worker, by outcome: handled, invalid, stale, "
    "dead_lettered (sends ran out of retries) or unfinished (the handler raised or was "
    "cancelled, so the record is read again).",
    ["outcome"],
    registry=REGISTRY,
)
SENDS = Counter(
    "verification_sends",
    "Calls of the message sender, by outcome (accepted, rejected, unavailable) and the "
    "provider's error code, empty when it gave none.",
    ["outcome", "error_code"],
    registry=REGISTRY,
)
SEND_FAILURES = Counter(
    "verification_send_failures",
    "send_failed events, by reason.",
    ["reason"],
    registry=REGISTRY,
)
SEND_REJECTIONS = Counter(
    "verification_send_rejections",
    "send_rejected events: sends a rule stopped, by reason.",
    ["reason"],
    registry=REGISTRY,
)
DELIVERY_STATUSES = Counter(
    "verification_delivery_statuses",
    "delivery_status events: status changes reported by the provider, by status.",
    ["status"],
    registry=REGISTRY,
)
CHECKS = Counter(
    "verification_checks",
    "Code checks, by result: approved, incorrect, expired, not_found or too_many_attempts.",
    ["result"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "verification_retries",
    "Retries of a step of request handling, by the error class that caused them.",
    ["error"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "verification_dead_letters",
    "Request records written to the dead letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "verification_in_flight",
    "Request records the worker is handling now.",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "verification_consumer_lag",
    "Records not yet fetched per assigned partition: the high watermark minus the "
    "consumer's position, refreshed every few seconds.",
    ["topic", "partition"],
    registry=REGISTRY,
)
TWILIO_REQUEST_SECONDS = Histogram(
    "verification_twilio_request_duration_seconds",
    "Duration of HTTP calls to the Twilio API, by method and response status code "
    "(0 when no response arrived).",
    ["method", "status_code"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
TIME_TO_DELIVERED = Histogram(
    "verification_time_to_delivered_seconds",
    "Time from the creation of a verification to the provider's delivered status.",
    buckets=(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0),
    registry=REGISTRY,
)
LOG_EVENTS_SUPPRESSED = Counter(
    "verification_log_events_suppressed",
    "Warning and error log records left out as repeats of an identical record within the "
    "repeat window, by event (the record's message template).",
    ["event"],
    registry=REGISTRY,
)


def render_metrics() -> tuple[bytes, str]:
    """Return the registry in the Prometheus text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
