"""Loads settings at process start and turns a bad configuration into one clear line each."""

import sys
from typing import NoReturn

from pydantic import ValidationError

from entrypoints.settings import Settings

CONFIGURATION_ERROR_EXIT_CODE = 2


def load_settings() -> Settings:
    """Return the settings, or print what is wrong and exit with status 2."""
    try:
        return Settings()
    except ValidationError as error:
        _exit_with(error)


def describe_errors(error: ValidationError) -> list[str]:
    """Return one line per bad variable: its name, what is wrong, and how to fix it."""
    lines = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"])
        field = Settings.model_fields.get(name)
        hint = field.description if field and field.description else "see .env.example"
        if item["type"] == "missing":
            lines.append(f"configuration error: {name} is missing: set it to {hint}")
        elif item.get("input") in ("", None) or _is_empty_secret(item.get("input")):
            lines.append(f"configuration error: {name} is empty: set it to {hint}")
        elif item["type"] == "value_error":
            # The validators' own messages already name the accepted forms.
            reason = str(item.get("ctx", {}).get("error", item["msg"]))
            shown = "" if _is_secret(name) else f" {_shorten(item.get('input'))}"
            lines.append(f"configuration error: {name} has invalid value{shown}: {reason}")
        else:
            # Secrets are never echoed back, even when invalid.
            shown = "" if _is_secret(name) else f" {_shorten(item.get('input'))}"
            lines.append(
                f"configuration error: {name} has invalid value{shown} "
                f"({item['msg']}): set it to {hint}"
            )
    return lines


def _exit_with(error: ValidationError) -> NoReturn:
    for line in describe_errors(error):
        print(line, file=sys.stderr)
    sys.exit(CONFIGURATION_ERROR_EXIT_CODE)


def _is_empty_secret(value: object) -> bool:
    return hasattr(value, "get_secret_value") and not value.get_secret_value()


def _is_secret(name: str) -> bool:
    return name in {"TWILIO_AUTH_TOKEN", "CODE_SECRET", "API_TOKEN", "DASHBOARD_TOKEN"}


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
