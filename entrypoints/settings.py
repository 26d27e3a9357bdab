"""Service settings, read once from the environment and an optional `.env` file."""

import re
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.phone import check_region
from adapters.redis.connection import redis_url
from domain.code import MAX_CODE_LENGTH, MIN_CODE_LENGTH, CodeAlphabet

Seconds = Annotated[float, Field(gt=0)]

# The ways events leave the process; see entrypoints/notifiers.py.
NotifierKind = Literal["websocket", "socketio", "redis", "none"]


# A host name, an IPv4 address, or an IPv6 address in brackets.
_KAFKA_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


class Settings(BaseSettings):
    """Every setting of the worker and the webhook. Secrets have no default.

    Each field's description is the hint printed when its value is missing or invalid.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        validate_default=True,
    )

    # Kafka
    KAFKA_SERVER: str = Field(
        "localhost:9092",
        min_length=1,
        description="the Kafka bootstrap servers as comma-separated host:port pairs",
    )
    KAFKA_TOPIC: str = Field(
        "Verification",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="the topic of the requests (letters, digits, '.', '_', '-')",
    )
    KAFKA_GROUP_ID: str = Field(
        "verification-group", min_length=1, description="the Kafka consumer group id"
    )
    KAFKA_AUTO_OFFSET_RESET: Literal["earliest", "latest"] = Field(
        "earliest", description="earliest or latest, where a new consumer group starts reading"
    )
    KAFKA_SESSION_TIMEOUT_MS: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="the consumer session timeout in milliseconds (1000 to 300000)",
    )
    KAFKA_PRODUCER_IDEMPOTENCE: bool = Field(
        True,
        description="true for the idempotent producer (Kafka 0.11 and later), or false for "
        "brokers without it such as Tansu, the local development broker",
    )

    CLAIM_LEASE_SECONDS: Seconds = Field(
        120.0,
        description="the seconds a worker keeps its claim on a request before another "
        "worker may take it over; keep it above TWILIO_TIMEOUT_SECONDS times "
        "SEND_MAX_ATTEMPTS",
    )
    MAX_REQUEST_AGE_SECONDS: int = Field(
        900,
        ge=0,
        description="the age in seconds after which a request read from Kafka is rejected "
        "as stale instead of sent, or 0 to send requests of any age",
    )
    MAX_IN_FLIGHT: int = Field(
        256,
        ge=1,
        le=10_000,
        description="the number of messages one worker handles at once (1 to 10000)",
    )
    SHUTDOWN_TIMEOUT_SECONDS: Seconds = Field(
        30.0,
        description="the seconds a stopping worker gives the message in hand before it "
        "leaves it uncommitted for the next owner",
    )

    # Redis
    REDIS_CONNECTION: str = Field(
        "localhost:6379",
        description="the Redis address as host:port or a redis://, rediss:// or unix:// URL",
    )
    REDIS_CLUSTER: bool = Field(
        False, description="true when REDIS_CONNECTION names a node of a Redis Cluster, else false"
    )
    REDIS_KEY_PREFIX: str = Field(
        "verification",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="the prefix of every Redis key this service writes (letters, digits, ._:-)",
    )

    # Twilio
    TWILIO_ACCOUNT_SID: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$",
        description="your Twilio Account SID, AC and 32 hex digits, from the Twilio console",
    )
    TWILIO_AUTH_TOKEN: SecretStr = Field(
        min_length=1, description="the auth token of your Twilio account"
    )
    TWILIO_PHONE_NUMBER: str = Field(
        description="the WhatsApp sender in E.164, with or without 'whatsapp:', "
        "for example +14155550100",
    )
    TWILIO_API_BASE_URL: AnyHttpUrl = Field(
        AnyHttpUrl("https://api.twilio.com"),
        description="base URL of the Twilio REST API; change it only to use an emulator",
    )
    TWILIO_TIMEOUT_SECONDS: Seconds = Field(
        10.0, description="the time limit of one Twilio API call in seconds, above 0"
    )
    TWILIO_MAX_MPS: float = Field(
        80.0,
        ge=0,
        description="the messages per second one worker sends to Twilio, or 0 for no "
        "pacing; divide the sender's Twilio rate by the number of workers",
    )
    SEND_MAX_ATTEMPTS: int = Field(
        5, ge=1, le=50, description="the number of tries of one send (1 to 50)"
    )
    SEND_MAX_ELAPSED_SECONDS: Seconds = Field(
        60.0, description="the time limit of the retries of one send in seconds, above 0"
    )

    # Webhook
    WEBHOOK_PUBLIC_URL: AnyHttpUrl = Field(
        description="the public base URL Twilio calls, such as https://verify.example.com; "
        "it must match what Twilio signs, so use the address in front of any proxy",
    )
    WEBHOOK_HOST: str = Field(
        "127.0.0.1", min_length=1, description="the address the webhook listens on, such as 0.0.0.0"
    )
    WEBHOOK_PORT: int = Field(
        4002, ge=1, le=65535, description="the port the webhook listens on (1 to 65535)"
    )

    # Codes
    CODE_SECRET: SecretStr = Field(
        min_length=16,
        description="a random secret of at least 16 characters keying the code digests, "
        "for example the output of: openssl rand -hex 32",
    )
    CODE_TTL_SECONDS: int = Field(
        300, ge=30, le=86_400, description="the lifetime of a code in seconds (30 to 86400)"
    )
    CODE_LENGTH: int = Field(
        6,
        ge=MIN_CODE_LENGTH,
        le=MAX_CODE_LENGTH,
        description=f"the number of characters in a code ({MIN_CODE_LENGTH} to {MAX_CODE_LENGTH})",
    )
    CODE_ALPHABET: CodeAlphabet = Field(
        CodeAlphabet.NUMERIC, description="numeric or alphanumeric, the characters of a code"
    )
    MESSAGE_TEMPLATE: str = Field(
        "Your verification code is: {code}",
        pattern=r"\{code\}",
        max_length=1500,
        description="the message text, with {code} where the code goes",
    )
    MAX_CHECK_ATTEMPTS: int = Field(
        5, ge=1, le=100, description="the checks allowed per code before it is dead (1 to 100)"
    )
    RESEND_COOLDOWN_SECONDS: int = Field(
        30,
        ge=0,
        le=3_600,
        description="the seconds before a new code may replace a live one (0 to 3600)",
    )
    MAX_SENDS_PER_PHONE_PER_HOUR: int = Field(
        5, ge=0, description="the codes sent to one phone in any hour, or 0 for no limit"
    )
    MAX_SENDS_PER_PHONE_PER_DAY: int = Field(
        10, ge=0, description="the codes sent to one phone in any 24 hours, or 0 for no limit"
    )
    MAX_SENDS_PER_MINUTE: int = Field(
        0, ge=0, description="the codes sent by all workers together per minute, or 0 for no limit"
    )
    ALLOWED_COUNTRIES: str = Field(
        "",
        pattern=r"^\s*([A-Za-z]{2}\s*(,\s*[A-Za-z]{2}\s*)*)?$",
        description="the comma-separated ISO 3166-1 alpha-2 regions that may get codes, "
        "such as EC,CO, or empty for all",
    )
    IDEMPOTENCY_WINDOW_SECONDS: int = Field(
        86_400,
        ge=60,
        description="the seconds a handled request is remembered, so a redelivery sends nothing",
    )
    RECORD_RETENTION_SECONDS: int = Field(
        3_600,
        ge=0,
        description="the seconds a verification stays readable after its code expires",
    )
    LEGACY_PLAIN_CODE: bool = Field(
        False,
        description="true to also store the plain code under the bare id (SET <Id> <code>) "
        "for consumers of the older contract, else false",
    )
    API_TOKEN: SecretStr | None = Field(
        None,
        description="the bearer token the /verifications endpoints require; set it in production",
    )
    DEFAULT_REGION: str | None = Field(
        None,
        description="the ISO 3166-1 alpha-2 region of national numbers, such as EC or GB, "
        "or empty to accept only E.164 numbers",
    )

    # Notifications
    MESSAGES_USERS_URL: str | None = Field(
        None,
        pattern=r"^(wss?|https?)://\S+$",
        description="the URL of the hub that receives events: ws:// or wss:// for a WebSocket "
        "hub, http:// or https:// for a Socket.IO hub, or empty to only log them",
    )
    NOTIFICATION_BUFFER_SIZE: int = Field(
        10_000, ge=1, le=1_000_000, description="the number of events kept while the hub is away"
    )

    # Notifier choice, the /ws hub and the /dashboard page
    NOTIFIER: NotifierKind = Field(
        # None is replaced by the kind that MESSAGES_USERS_URL implies, in _default_notifier.
        None,  # type: ignore[assignment]
        description="websocket, socketio, redis or none, the way events are sent; empty picks "
        "websocket for a ws:// or wss:// MESSAGES_USERS_URL, socketio for http:// or https://, "
        "and none (log only) without a URL",
    )
    NOTIFICATION_CHANNEL: str = Field(
        "verification-events",
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="the Redis pub/sub channel that NOTIFIER=redis publishes on and the /ws hub "
        "reads (letters, digits, ._:-)",
    )
    DASHBOARD_TOKEN: SecretStr | None = Field(
        None,
        min_length=16,
        description="the operator token of /dashboard and of /ws?all=true, at least 16 "
        "characters such as the output of: openssl rand -hex 32; empty turns both off",
    )
    HUB_CLIENT_QUEUE_SIZE: int = Field(
        1_000,
        ge=1,
        le=100_000,
        description="the number of events waiting for one /ws client before it is "
        "disconnected as too slow (1 to 100000)",
    )
    HUB_HISTORY_SIZE: int = Field(
        500,
        ge=0,
        le=100_000,
        description="the number of recent events the /ws hub sends a new subscriber first, "
        "or 0 for none",
    )

    @field_validator("DASHBOARD_TOKEN", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("NOTIFIER", mode="before")
    @classmethod
    def _default_notifier(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
        if value not in ("", None):
            return value
        # MESSAGES_USERS_URL is declared earlier, so it is validated by now. An invalid
        # URL is missing here and gets an error line of its own.
        url = info.data.get("MESSAGES_USERS_URL")
        if url is None:
            return "none"
        return "websocket" if url.startswith(("ws://", "wss://")) else "socketio"

    @field_validator("NOTIFIER")
    @classmethod
    def _notifier_matches_url(cls, value: NotifierKind, info: ValidationInfo) -> NotifierKind:
        if value not in ("websocket", "socketio"):
            return value
        if "MESSAGES_USERS_URL" not in info.data:
            # The URL itself is invalid, and its own error line reports it.
            return value
        url = info.data["MESSAGES_USERS_URL"]
        schemes = ("ws://", "wss://") if value == "websocket" else ("http://", "https://")
        if url is None:
            raise ValueError(
                f"NOTIFIER={value} needs a hub: set MESSAGES_USERS_URL to a "
                f"{' or '.join(schemes)} URL, or set NOTIFIER to redis or none"
            )
        if not url.startswith(schemes):
            scheme = url.partition("://")[0]
            implied = "websocket" if scheme in ("ws", "wss") else "socketio"
            raise ValueError(
                f"NOTIFIER={value} does not match the {scheme}:// MESSAGES_USERS_URL: use a "
                f"{' or '.join(schemes)} URL, or set NOTIFIER to {implied} or leave it empty"
            )
        return value

    # Worker metrics and health
    METRICS_HOST: str = Field(
        "127.0.0.1",
        min_length=1,
        description="the address the worker's /metrics, /healthz and /readyz server listens "
        "on, such as 0.0.0.0 for a scraper on another host",
    )
    METRICS_PORT: int = Field(
        9102,
        ge=0,
        le=65535,
        description="the port of the worker's /metrics, /healthz and /readyz server "
        "(1 to 65535), or 0 for no server",
    )

    # Logging
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR"
    )
    LOG_FORMAT: Literal["auto", "json", "console"] = Field(
        "auto", description="json, console, or auto (console on a terminal, else json)"
    )

    @field_validator("DEFAULT_REGION", "MESSAGES_USERS_URL", "API_TOKEN", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("DEFAULT_REGION")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        return check_region(value) if value else None

    @field_validator("ALLOWED_COUNTRIES")
    @classmethod
    def _known_countries(cls, value: str) -> str:
        regions = [check_region(part) for part in value.split(",") if part.strip()]
        return ",".join(regions)

    @property
    def allowed_countries(self) -> frozenset[str]:
        return frozenset(part for part in self.ALLOWED_COUNTRIES.split(",") if part)

    @field_validator("REDIS_CONNECTION")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return redis_url(value)

    @field_validator("KAFKA_SERVER")
    @classmethod
    def _kafka_servers(cls, value: str) -> str:
        servers = [part.strip() for part in value.split(",")]
        for server in servers:
            host, _, port = server.rpartition(":") if ":" in server else (server, "", "9092")
            if not _KAFKA_HOST.fullmatch(host) or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"invalid server {server!r}: use comma-separated host:port pairs such as "
                    "kafka-1:9092,kafka-2:9092, without a scheme"
                )
        return ",".join(servers)

    @field_validator("TWILIO_PHONE_NUMBER")
    @classmethod
    def _sender_number(cls, value: str) -> str:
        number = value.strip().removeprefix("whatsapp:").strip()
        if not number.startswith("+") or not number[1:].isdigit() or not 8 <= len(number) <= 16:
            raise ValueError(
                f"invalid number {value!r}: use E.164 such as +14155550100, "
                "with or without whatsapp:"
            )
        return number
