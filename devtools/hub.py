"""A demo WebSocket hub that prints every event frame the service sends it."""

import json
from collections.abc import Callable

from websockets.asyncio.server import Server, ServerConnection, serve


async def start_printing_hub(port: int, show: Callable[[str], None] = print) -> Server:
    """Listen on 127.0.0.1:`port` and pass each frame, one line of JSON, to `show`."""

    async def receive(connection: ServerConnection) -> None:
        async for frame in connection:
            try:
                event = json.loads(frame)
            except json.JSONDecodeError:
                show(f"hub received a frame that is not JSON: {frame!r:.200}")
                continue
            show(f"hub event {json.dumps(event, sort_keys=True)}")

    return await serve(receive, "127.0.0.1", port)
