"""Emulator of the Twilio Messages API and its signed status callbacks, for tests and demos.

In-process use::

    async with running_emulator(EmulatorConfig(account_sid, auth_token, sender)) as emulator:
        client.api.base_url = emulator.base_url

From a shell: `python -m twilio_emulator --help`.
"""

from twilio_emulator.config import ConfigError, EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import EmulatorState

__all__ = ["ConfigError", "EmulatorConfig", "EmulatorState", "RunningEmulator", "running_emulator"]
