"""The ``linkai-images`` command line: ``generate``, ``batch``, ``models``, ``demo``, ``gallery``.

Built on argparse, not click or typer: four subcommands do not justify a new
core dependency, which every user of the SDK (most of whom never run the
command line) would install.

Every user error (no key, a bad value, an unreadable or bad batch file, the
API refusing) ends as one line on stderr, ``linkai-images: error: ...``, and
exit status 1, never a traceback and never the key. Usage errors are
argparse's (status 2); Ctrl+C exits 130. Async code runs under
``anyio.run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from .._config import ENV_API_KEY
from .._exceptions import LinkAIError
from .._version import __version__
from . import batch, demo, gallery, generate, models
from .batch_file import BatchFileError
from .errors import describe_error, redact
from .options import PROG, CommandError, api_options

__all__ = ["build_parser", "main"]

_USER_ERRORS = (LinkAIError, BatchFileError, OSError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``linkai-images``: one sub-parser per command module."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate images with the LinkAI image API (see docs/cli.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    api = api_options()
    generate.add_command(commands, api)
    batch.add_command(commands, api)
    models.add_command(commands)
    demo.add_command(commands)
    gallery.add_command(commands)
    return parser


# --- the entry point --------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning (a checkpoint that could not be written, ...) as one line, not a source quote."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple) and isinstance(exc, BaseException):
        return [leaf for sub in inner for leaf in _leaves(sub)]
    return [exc]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``linkai-images``.

    Args:
        argv: the arguments; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 done, 1 an error or failed requests, 2 a usage
        error, 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    secret = getattr(args, "api_key", None) or os.environ.get(ENV_API_KEY)
    # Retries are shown by the command itself; without a handler of its own,
    # the SDK's retry log lines would reach stderr through logging's last resort.
    quiet = logging.NullHandler()
    logger = logging.getLogger("linkai_images")
    logger.addHandler(quiet)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status: int = args.run(args)
    except BaseException as exc:
        leaves = _leaves(exc)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            hint = " (run the same command again to resume)" if args.command == "batch" else ""
            print(f"{PROG}: interrupted{hint}", file=sys.stderr)
            return 130
        if not all(isinstance(leaf, (CommandError, *_USER_ERRORS)) for leaf in leaves):
            raise  # a bug: its traceback is what a report needs
        message = describe_error(leaves[0])
        print(f"{PROG}: error: {redact(message, secret)}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(quiet)
    return status
