"""What every command shares: the program name, user errors, argument types, API options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ENV_API_KEY

__all__ = ["PROG", "CommandError", "api_options", "client_options", "count", "positive_float"]

PROG = "linkai-images"


class CommandError(Exception):
    """A user error found by the command line itself."""


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value

    return parse


def api_options() -> argparse.ArgumentParser:
    """The options of the commands that call the API, as a parent parser."""
    api = argparse.ArgumentParser(add_help=False)
    group = api.add_argument_group("API options")
    group.add_argument(
        "--api-key", help=f"the API key (default: ${ENV_API_KEY}; prefer the variable)"
    )
    group.add_argument(
        "--base-url", help="the API base URL (default: $LINKAI_BASE_URL, else the platform's)"
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help=f"how long one attempt may wait for its answer (default: {DEFAULT_TIMEOUT.read:g})",
    )
    group.add_argument(
        "--max-retries",
        type=count(0),
        metavar="N",
        help=f"retries of a 503/429 after the first attempt (default: {DEFAULT_MAX_RETRIES})",
    )
    return api


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``AsyncImageClient`` arguments that the API options give."""
    key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY)
    if not key or not key.strip():
        raise CommandError(f"no API key: set {ENV_API_KEY} or pass --api-key")
    options: dict[str, Any] = {"api_key": key, "base_url": args.base_url}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    return options
