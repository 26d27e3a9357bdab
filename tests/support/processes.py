"""Runs the service's entry points as child processes, the way an operator starts them."""

import os
import signal
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """One `python -m <module>` child with its own environment and log file."""

    def __init__(self, module: str, environment: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.log_path = log_path
        base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
        self._environment = {**base, **environment, "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=REPOSITORY,
                env=self._environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout_seconds: float = 30.0) -> int:
        """Send SIGTERM, wait for the exit and return the exit code."""
        if self._process is None:
            raise RuntimeError(f"{self.module} was not started")
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
            raise

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
