"""Container health check of the image: `GET /healthz` in a webhook container.

Docker runs it as the image's HEALTHCHECK, with the standard library only, because the
slim Python image has no curl or wget. A container that runs the worker or the Twilio
emulator has no health endpoint, so the check passes while the container runs and the
restart policy handles a process that exits.
"""

import http.client
import os
import sys
import urllib.request

WEBHOOK_MODULE = b"entrypoints.webhook"
DEFAULT_WEBHOOK_PORT = "4002"
TIMEOUT_SECONDS = 3.0


def runs_webhook(command_line: bytes) -> bool:
    """Return whether a `/proc/<pid>/cmdline` value runs the webhook module."""
    return WEBHOOK_MODULE in command_line.split(b"\0")


def check_webhook(port: str) -> str | None:
    """Request the webhook's `/healthz` on loopback and return why it failed, or None on 200."""
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            if response.status == 200:
                return None
            return f"GET {url} returned status {response.status}"
    except (OSError, http.client.HTTPException, ValueError) as error:
        # URLError, HTTPError and timeouts are OSErrors; ValueError is an invalid port.
        return f"GET {url} failed: {error}"


def main() -> int:
    # PID 1 is the container's command, or docker-init followed by the command.
    with open("/proc/1/cmdline", "rb") as file:
        command_line = file.read()
    if not runs_webhook(command_line):
        return 0
    problem = check_webhook(os.environ.get("WEBHOOK_PORT", DEFAULT_WEBHOOK_PORT))
    if problem is not None:
        print(f"webhook health check failed: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
