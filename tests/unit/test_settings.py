"""Settings: accepted forms, defaults, and the one-line errors printed at start."""

import subprocess
import sys

import pytest
from pydantic import ValidationError

from entrypoints.settings import Settings
from entrypoints.startup import describe_errors
from tests.settings import TEST_AUTH_TOKEN, TEST_CODE_SECRET, make_settings


def test_defaults_match_existing_deployments() -> None:
    settings = make_settings()

    assert settings.KAFKA_TOPIC == "Verification"
    assert settings.KAFKA_GROUP_ID == "verification-group"
    assert settings.KAFKA_AUTO_OFFSET_RESET == "earliest"
    assert settings.WEBHOOK_PORT == 4002
    assert settings.CODE_TTL_SECONDS == 300
    assert settings.CODE_LENGTH == 6


@pytest.mark.parametrize("number", ["+14155550100", "whatsapp:+14155550100", " +14155550100 "])
def test_sender_number_accepts_whatsapp_prefix(number: str) -> None:
    assert make_settings(TWILIO_PHONE_NUMBER=number).TWILIO_PHONE_NUMBER == "+14155550100"


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ("redis-host:6380", "redis://redis-host:6380"),
        ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    ],
)
def test_redis_connection_accepts_host_port_and_url(connection: str, url: str) -> None:
    assert make_settings(REDIS_CONNECTION=connection).REDIS_CONNECTION == url


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ("kafka:9092", "kafka:9092"),
        (" kafka-1:9092 , 10.0.0.5:9093 ", "kafka-1:9092,10.0.0.5:9093"),
        ("[::1]:9092", "[::1]:9092"),
        ("kafka", "kafka"),
    ],
)
def test_kafka_server_accepts_host_port_pairs(servers: str, expected: str) -> None:
    assert make_settings(KAFKA_SERVER=servers).KAFKA_SERVER == expected


def test_empty_region_means_e164_only() -> None:
    assert make_settings(DEFAULT_REGION="").DEFAULT_REGION is None
    assert make_settings(DEFAULT_REGION="gb").DEFAULT_REGION == "GB"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_ACCOUNT_SID", "not-a-sid"),
        ("TWILIO_PHONE_NUMBER", "12345"),
        ("DEFAULT_REGION", "XX"),
        ("CODE_LENGTH", "3"),
        ("CODE_TTL_SECONDS", "0"),
        ("WEBHOOK_PORT", "70000"),
        ("WEBHOOK_PUBLIC_URL", "verify.example.test"),
        ("MESSAGES_USERS_URL", "ftp://hub.example.test"),
        ("MESSAGE_TEMPLATE", "Your code"),
        ("REDIS_CONNECTION", "http://x"),
        ("KAFKA_SERVER", "notaport:xx"),
        ("KAFKA_SERVER", "127.0.0.1:notaport"),
        ("KAFKA_SERVER", "kafka-1:9092,,kafka-2:9092"),
        ("KAFKA_SERVER", "PLAINTEXT://kafka:9092"),
        ("KAFKA_SERVER", "kafka:70000"),
    ],
)
def test_invalid_value_names_variable_and_fix(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(**{name: value})

    [line] = describe_errors(caught.value)
    assert line.startswith(f"configuration error: {name} has invalid value")
    assert any(fix in line.lower() for fix in ("set it to ", ": use ", "set redis_connection"))


def test_missing_secret_is_named_without_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]

    lines = describe_errors(caught.value)
    assert (
        "configuration error: TWILIO_AUTH_TOKEN is missing: set it to the auth token"
        in "\n".join(lines)
    )
    assert any(line.startswith("configuration error: CODE_SECRET is missing") for line in lines)


def test_empty_secret_is_named_empty() -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(TWILIO_AUTH_TOKEN="")

    [line] = describe_errors(caught.value)
    assert line.startswith("configuration error: TWILIO_AUTH_TOKEN is empty: set it to")


def test_short_secret_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(CODE_SECRET="short-secret")

    [line] = describe_errors(caught.value)
    assert "CODE_SECRET" in line
    assert "short-secret" not in line


@pytest.mark.parametrize("module", ["entrypoints.worker", "entrypoints.webhook"])
def test_entrypoint_exits_2_on_bad_setting(module: str, tmp_path: object) -> None:
    environment = {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": "+14155550100",
        "WEBHOOK_PUBLIC_URL": "http://127.0.0.1:4002",
        "CODE_SECRET": TEST_CODE_SECRET,
        "CODE_LENGTH": "12",
        "PATH": "/usr/bin:/bin",
    }

    result = subprocess.run(
        [sys.executable, "-m", module],
        env=environment,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: CODE_LENGTH has invalid value '12' (Input should be less than "
        "or equal to 10): set it to the number of characters in a code (4 to 10)"
    ]
    assert "Traceback" not in result.stderr
