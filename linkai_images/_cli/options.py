"""What every command shares: the program name, user errors, argument types, API options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from .._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ENV_API_KEY, ENV_LIMITER_URL
from .._pacing import parse_rate

__all__ = [
    "PROG",
    "CommandError",
    "api_options",
    "client_options",
    "count",
    "model_rate",
    "positive_float",
    "rate",
]

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


def rate(text: str) -> str:
    """An argparse type: a rate, ``N/second``, ``N/minute`` or ``N/hour``."""
    try:
        parse_rate(text, name="rate")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def model_rate(text: str) -> tuple[str, str]:
    """An argparse type: ``MODEL=RATE``, e.g. ``gpt-image-2=5/minute``."""
    model, sep, value = text.partition("=")
    if not sep or not model.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL=RATE (e.g. gpt-image-2=5/minute)")
    return model.strip(), rate(value)


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
    pacing = api.add_argument_group("pacing options (see docs/pacing.md)")
    pacing.add_argument(
        "--rate-limit",
        type=rate,
        metavar="RATE",
        help="request starts allowed, spread evenly: N/second, N/minute or N/hour",
    )
    pacing.add_argument(
        "--model-rate-limit",
        type=model_rate,
        action="append",
        metavar="MODEL=RATE",
        help="a rate for one model, e.g. gpt-image-2=5/minute (repeatable)",
    )
    pacing.add_argument(
        "--adaptive-concurrency",
        action="store_true",
        help="lower the requests in flight when the API answers 429 or times out",
    )
    pacing.add_argument(
        "--limiter-url",
        metavar="URL",
        help=f"share the rate limits through Redis, e.g. redis://host:6379/0 "
        f"(default: ${ENV_LIMITER_URL})",
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
    if args.rate_limit is not None:
        options["rate_limit"] = args.rate_limit
    if args.model_rate_limit:
        options["model_rate_limits"] = dict(args.model_rate_limit)
    if args.adaptive_concurrency:
        options["adaptive_concurrency"] = True
    if args.limiter_url is not None:
        if args.rate_limit is None and not args.model_rate_limit:
            raise CommandError(
                "--limiter-url shares rate limits between processes, but none is set; "
                "add --rate-limit and/or --model-rate-limit"
            )
        options["limiter_url"] = args.limiter_url
    return options
