"""Notifier that only logs events, for deployments without a hub."""

import logging

from adapters.notification.frames import event_to_frame
from domain.events import Event

logger = logging.getLogger(__name__)


class LogNotifier:
    """Writes each event to the log at INFO instead of sending it anywhere."""

    async def publish(self, event: Event) -> None:
        logger.info("notification", extra={"frame": event_to_frame(event)})
