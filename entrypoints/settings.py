"""Service settings, read once from the environment and an optional `.env` file."""

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.phone import check_region
from adapters.redis.connection import redis_url
from domain.code import MAX_CODE_LENGTH, MIN_CODE_LENGTH, CodeAlphabet

Seconds = Annotated[float, Field(gt=0)]


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
        description="comma-separated Kafka bootstrap servers as host:port",
    )
    KAFKA_TOPIC: str = Field(
        "Verification",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="the topic to consume requests from (letters, digits, '.', '_', '-')",
    )
    KAFKA_GROUP_ID: str = Field(
        "verification-group", min_length=1, description="the Kafka consumer group id"
    )
    KAFKA_AUTO_OFFSET_RESET: Literal["earliest", "latest"] = Field(
        "earliest", description="where a new group starts reading: earliest or latest"
    )
    KAFKA_SESSION_TIMEOUT_MS: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="consumer session timeout in milliseconds (1000 to 300000)",
    )

    # Redis
    REDIS_CONNECTION: str = Field(
        "localhost:6379",
        description="Redis as host:port or a redis://, rediss:// or unix:// URL",
    )
    REDIS_KEY_PREFIX: str = Field(
        "verification",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="prefix of every Redis key this service writes",
    )

    # Twilio
    TWILIO_ACCOUNT_SID: str = Field(
        pattern=r"^AC[0-9a-fA-F]{32}$",
        description="your Twilio Account SID: 'AC' and 32 hex digits, from the Twilio console",
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
        10.0, description="how long one Twilio API call may take, in seconds"
    )
    SEND_MAX_ATTEMPTS: int = Field(
        5, ge=1, le=50, description="how many times one send is tried (1 to 50)"
    )
    SEND_MAX_ELAPSED_SECONDS: Seconds = Field(
        60.0, description="how long retries of one send may go on, in seconds"
    )

    # Webhook
    WEBHOOK_PUBLIC_URL: AnyHttpUrl = Field(
        description="the public base URL Twilio calls, such as https://verify.example.com; "
        "it must match what Twilio signs, so use the address in front of any proxy",
    )
    WEBHOOK_HOST: str = Field(
        "127.0.0.1", min_length=1, description="the address the webhook listens on"
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
        300, ge=30, le=86_400, description="how long a code stays valid, in seconds (30 to 86400)"
    )
    CODE_LENGTH: int = Field(
        6,
        ge=MIN_CODE_LENGTH,
        le=MAX_CODE_LENGTH,
        description=f"number of characters in a code ({MIN_CODE_LENGTH} to {MAX_CODE_LENGTH})",
    )
    CODE_ALPHABET: CodeAlphabet = Field(
        CodeAlphabet.NUMERIC, description="characters of a code: numeric or alphanumeric"
    )
    MESSAGE_TEMPLATE: str = Field(
        "Your verification code is: {code}",
        pattern=r"\{code\}",
        max_length=1500,
        description="the message text, containing {code} where the code goes",
    )
    DEFAULT_REGION: str | None = Field(
        None,
        description="ISO 3166-1 alpha-2 region for national numbers, such as EC or GB; "
        "leave empty to accept only E.164 numbers",
    )

    # Notifications
    MESSAGES_USERS_URL: str | None = Field(
        None,
        pattern=r"^wss?://\S+$",
        description="ws:// or wss:// URL of the WebSocket hub that receives events; "
        "leave empty to only log events",
    )
    NOTIFICATION_BUFFER_SIZE: int = Field(
        10_000, ge=1, le=1_000_000, description="events kept while the hub is away"
    )

    # Logging
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG, INFO, WARNING or ERROR"
    )
    LOG_FORMAT: Literal["auto", "json", "console"] = Field(
        "auto", description="json, console, or auto (console on a terminal, else json)"
    )

    @field_validator("DEFAULT_REGION", "MESSAGES_USERS_URL", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("DEFAULT_REGION")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        return check_region(value) if value else None

    @field_validator("REDIS_CONNECTION")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return redis_url(value)

    @field_validator("TWILIO_PHONE_NUMBER")
    @classmethod
    def _sender_number(cls, value: str) -> str:
        number = value.strip().removeprefix("whatsapp:").strip()
        if not number.startswith("+") or not number[1:].isdigit() or not 8 <= len(number) <= 16:
            raise ValueError(f"invalid number {value!r}")
        return number
