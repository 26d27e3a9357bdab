"""Starts a throwaway three-node Redis Cluster on loopback ports for integration tests."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

# Redis Cluster nodes talk to each other on the client port plus this offset.
CLUSTER_BUS_PORT_OFFSET = 10000
NODE_COUNT = 3


class LocalRedisCluster:
    """Three `redis-server --cluster-enabled yes` child processes that own all 16384 slots.

    Each node listens on 127.0.0.1 only, keeps nothing on disk beyond its cluster
    config file, and writes its log into a temporary directory that `stop` removes.
    """

    def __init__(self, timeout_seconds: float = 30.0) -> None:
        self.timeout_seconds = timeout_seconds
        self.ports: list[int] = []
        self._directory: Path | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Return the URL of the first node, from which a cluster client finds the rest."""
        if not self.ports:
            raise RuntimeError("the Redis Cluster is not started: call start() first")
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        """Start the nodes, join them into one cluster and wait for `cluster_state:ok`.

        Raises `RuntimeError` with the node logs when a step fails or the cluster is
        not ready within `timeout_seconds`, after stopping whatever was started.
        """
        for program in ("redis-server", "redis-cli"):
            if shutil.which(program) is None:
                raise RuntimeError(f"{program} is not on PATH: install Redis 7 to run these tests")
        self._directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        deadline = time.monotonic() + self.timeout_seconds
        try:
            self.ports = _free_node_ports(NODE_COUNT)
            for port in self.ports:
                self._processes.append(self._start_node(port))
            for port in self.ports:
                _wait_for_ping(port, deadline)
            self._create_cluster(deadline)
            for port in self.ports:
                _wait_for_cluster_ok(port, deadline)
        except BaseException as error:
            logs = self._node_logs()
            self.stop()
            raise RuntimeError(f"the Redis Cluster did not start: {error}\n{logs}") from error

    def stop(self) -> None:
        """Stop every node and delete the temporary directory. Safe to call twice."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._processes = []
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> "LocalRedisCluster":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_node(self, port: int) -> subprocess.Popen[bytes]:
        assert self._directory is not None
        return subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self._directory / f"nodes-{port}.conf"),
                "--dir",
                str(self._directory),
                "--logfile",
                str(self._directory / f"redis-{port}.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _create_cluster(self, deadline: float) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(
                f"redis-cli --cluster create exited with {result.returncode}:\n{output}"
            )

    def _node_logs(self) -> str:
        if self._directory is None:
            return ""
        logs = []
        for path in sorted(self._directory.glob("redis-*.log")):
            tail = path.read_text(errors="replace").splitlines()[-20:]
            logs.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(logs)


def _free_node_ports(count: int) -> list[int]:
    """Return `count` loopback ports that were free, together with their cluster bus ports.

    Another process may take a port between this check and the node's start, in which
    case that node fails to start and `start` reports it.
    """
    ports: list[int] = []
    for _ in range(200):
        port = _free_loopback_port(0)
        bus_port = port + CLUSTER_BUS_PORT_OFFSET
        if bus_port > 65535 or port in ports or not _is_free(bus_port):
            continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"found no {count} free loopback ports whose cluster bus port is free too")


def _free_loopback_port(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))
        bound: int = probe.getsockname()[1]
    return bound


def _is_free(port: int) -> bool:
    try:
        _free_loopback_port(port)
    except OSError:
        return False
    return True


def _wait_for_ping(port: int, deadline: float) -> None:
    while _redis_cli(port, "PING", deadline) != "PONG":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Redis node on port {port} did not answer PING in time")
        time.sleep(0.05)


def _wait_for_cluster_ok(port: int, deadline: float) -> None:
    while "cluster_state:ok" not in _redis_cli(port, "CLUSTER INFO", deadline):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Redis node on port {port} did not reach cluster_state:ok")
        time.sleep(0.05)


def _redis_cli(port: int, command: str, deadline: float) -> str:
    """Run one command with redis-cli and return its output, or "" when it fails."""
    try:
        result = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command.split()],
            capture_output=True,
            timeout=max(min(deadline - time.monotonic(), 5.0), 0.5),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.decode(errors="replace").strip()
