"""Option checks of the worker benchmark script."""

import pytest

from bench.worker_benchmark import parse_arguments


def test_worker_setting_accepts_name_and_value() -> None:
    arguments = parse_arguments(["--worker-setting", "OTEL_TRACES_EXPORTER=console"])

    assert arguments.worker_setting == ["OTEL_TRACES_EXPORTER=console"]


@pytest.mark.parametrize("setting", ["OTEL_TRACES_EXPORTER", "=console"])
def test_worker_setting_without_name_and_value_exits(
    setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_arguments(["--worker-setting", setting])

    assert raised.value.code == 2
    assert f"invalid --worker-setting '{setting}': use NAME=VALUE" in capsys.readouterr().err
