"""`.env.example` documents every setting, and only settings that exist."""

from pathlib import Path

from entrypoints.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def _names() -> list[str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def test_env_example_lists_every_setting() -> None:
    assert sorted(_names()) == sorted(Settings.model_fields)


def test_env_example_has_no_duplicates() -> None:
    names = _names()

    assert len(names) == len(set(names))
