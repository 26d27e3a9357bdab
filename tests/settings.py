"""Settings for tests: fixed test credentials and loopback addresses only."""

from typing import Any

from entrypoints.settings import Settings

TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "test-auth-token-0123456789"
TEST_SENDER = "+14155550100"
TEST_CODE_SECRET = "test-code-secret-0123456789"


def make_settings(**overrides: Any) -> Settings:
    """Return settings that point at loopback only and ignore any `.env` file."""
    values: dict[str, Any] = {
        "KAFKA_SERVER": "127.0.0.1:9",
        "REDIS_CONNECTION": "127.0.0.1:6379",
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TEST_SENDER,
        "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
        "WEBHOOK_PUBLIC_URL": "http://127.0.0.1:4002",
        "CODE_SECRET": TEST_CODE_SECRET,
        "DEFAULT_REGION": "EC",
        # In-process workers of concurrent tests would share the default port.
        "METRICS_PORT": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
