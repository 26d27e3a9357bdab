"""Free loopback ports and waiting for a server to listen."""

import asyncio
import socket
import time


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_seconds: float, host: str = "127.0.0.1") -> None:
    """Block until `host:port` accepts connections, or raise `TimeoutError`."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_seconds} s"
                ) from error
            time.sleep(0.05)


async def wait_for_port_async(port: int, timeout_seconds: float, host: str = "127.0.0.1") -> None:
    """Wait until `host:port` accepts connections, or raise `TimeoutError`."""
    async with asyncio.timeout(timeout_seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
