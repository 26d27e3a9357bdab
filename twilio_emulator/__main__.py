"""Entry point of `python -m twilio_emulator`."""

import sys

from twilio_emulator.cli import main

sys.exit(main())
