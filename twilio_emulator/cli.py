"""Command line of the emulator: options, environment defaults and the serving loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Mapping, Sequence

from twilio_emulator.config import DEFAULT_CALLBACK_STATUSES, ConfigError, EmulatorConfig
from twilio_emulator.server import serve_until_stopped

DEFAULT_PORT = 4010


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Return the argument parser, with credential defaults taken from `environ`."""
    parser = argparse.ArgumentParser(
        prog="python -m twilio_emulator",
        description=(
            "Serve an emulation of the Twilio Messages API and its signed status callbacks "
            "for tests and local demos, without a Twilio account."
        ),
    )
    add_server_options(parser.add_argument_group("server"))
    add_account_options(parser.add_argument_group("account"), environ)
    add_timing_options(parser.add_argument_group("timing"))
    return parser


def add_server_options(group: argparse._ArgumentGroup) -> None:
    """Add the listening address and logging options."""
    group.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    group.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="TCP port to listen on, or 0 for a free port (default: %(default)s)",
    )
    group.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: %(default)s)",
    )


def add_account_options(group: argparse._ArgumentGroup, environ: Mapping[str, str]) -> None:
    """Add the credentials and the sender number, defaulting to the Twilio variables."""
    group.add_argument(
        "--account-sid",
        default=environ.get("TWILIO_ACCOUNT_SID"),
        help="Account SID that clients must authenticate with (default: $TWILIO_ACCOUNT_SID)",
    )
    group.add_argument(
        "--auth-token",
        default=environ.get("TWILIO_AUTH_TOKEN"),
        help=(
            "Auth Token that clients must authenticate with and that signs status callbacks "
            "(default: $TWILIO_AUTH_TOKEN, which keeps the token out of the process list)"
        ),
    )
    group.add_argument(
        "--whatsapp-sender",
        default=environ.get("TWILIO_PHONE_NUMBER"),
        help=(
            "sender number accepted as From, as +E164 or whatsapp:+E164 "
            "(default: $TWILIO_PHONE_NUMBER)"
        ),
    )


def add_timing_options(group: argparse._ArgumentGroup) -> None:
    """Add the emulated latencies and the status callback options."""
    group.add_argument(
        "--callback-delay-ms",
        type=int,
        default=20,
        help="delay before each status callback, in milliseconds (default: %(default)s)",
    )
    group.add_argument(
        "--response-delay-ms",
        type=int,
        default=0,
        help="delay before each API response, in milliseconds (default: %(default)s)",
    )
    group.add_argument(
        "--callback-timeout-seconds",
        type=float,
        default=5.0,
        help="timeout of each status callback request, in seconds (default: %(default)s)",
    )
    group.add_argument(
        "--no-callbacks",
        action="store_true",
        help=(
            "send no status callbacks unless a recipient script lists some, for load "
            "tests without a webhook (default: send sent, delivered and read)"
        ),
    )


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[EmulatorConfig, str]:
    """Parse the command line into a config and a log level.

    Exits with status 2 and a usage message when an option is missing or invalid.
    """
    environment = os.environ if environ is None else environ
    parser = build_parser(environment)
    args = parser.parse_args(argv)
    missing = [
        f"{flag} (or ${variable})"
        for flag, variable, value in (
            ("--account-sid", "TWILIO_ACCOUNT_SID", args.account_sid),
            ("--auth-token", "TWILIO_AUTH_TOKEN", args.auth_token),
            ("--whatsapp-sender", "TWILIO_PHONE_NUMBER", args.whatsapp_sender),
        )
        if not value
    ]
    if missing:
        parser.error("missing " + ", ".join(missing))
    try:
        config = EmulatorConfig(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            whatsapp_sender=args.whatsapp_sender,
            host=args.host,
            port=args.port,
            callback_delay_ms=args.callback_delay_ms,
            response_delay_ms=args.response_delay_ms,
            callback_timeout_seconds=args.callback_timeout_seconds,
            default_callback_statuses=() if args.no_callbacks else DEFAULT_CALLBACK_STATUSES,
        )
    except ConfigError as error:
        parser.error(str(error))
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until it is interrupted, and return the exit status."""
    config, log_level = parse_config(argv)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve_until_stopped(config))
    return 0
