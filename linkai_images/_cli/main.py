"""The ``linkai-images`` command line: ``generate``, ``batch``, ``models``, ``demo``.

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
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import attrs

from .._catalog import CATALOG
from .._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, ENV_API_KEY
from .._exceptions import LinkAIError
from .._retry import RetryEvent
from .._version import __version__
from .batch_file import BatchFileError, read_batch_file
from .run import Report, describe_error, print_summary, redact, run_jobs, slug

__all__ = ["DEFAULT_BATCH_CONCURRENCY", "CommandError", "main"]

PROG = "linkai-images"
#: Requests a batch keeps in flight unless ``--concurrency`` says otherwise.
DEFAULT_BATCH_CONCURRENCY = 8
_USER_ERRORS = (LinkAIError, BatchFileError, OSError)


class CommandError(Exception):
    """A user error found by the command line itself."""


# --- argument types ---------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value

    return parse


# --- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``linkai-images``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate images with the LinkAI image API (see docs/cli.md).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        type=_positive_float,
        metavar="SECONDS",
        help=f"how long one attempt may wait for its answer (default: {DEFAULT_TIMEOUT.read:g})",
    )
    group.add_argument(
        "--max-retries",
        type=_count(0),
        metavar="N",
        help=f"retries of a 503/429 after the first attempt (default: {DEFAULT_MAX_RETRIES})",
    )

    generate = commands.add_parser(
        "generate", parents=[api], help="generate images from a prompt and save them"
    )
    generate.add_argument("prompt", help="what to draw; with --image, how to change it")
    generate.add_argument("-m", "--model", required=True, help="model code, e.g. gpt-image-2")
    generate.add_argument(
        "--image",
        action="append",
        metavar="PATH_OR_URL",
        help="a reference image: a file, an http(s) URL or a data URI (repeatable)",
    )
    generate.add_argument("--size", help="resolution tier (1K, 2K, 4K, ...) or WIDTHxHEIGHT")
    generate.add_argument("--aspect-ratio", help="e.g. 16:9")
    generate.add_argument("--quality", help="e.g. high (gpt-image-2)")
    generate.add_argument(
        "-o",
        "--output",
        metavar="FILE_OR_DIR",
        help="where to save: a file (several images get -1, -2, ...) or a directory "
        "(default: the current directory, named after the prompt)",
    )
    generate.set_defaults(run=_generate)

    batch = commands.add_parser(
        "batch", parents=[api], help="run a JSONL or CSV file of requests, resumably"
    )
    batch.add_argument("file", type=Path, help="a .jsonl or .csv file of requests")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    batch.add_argument(
        "--concurrency",
        type=_count(1),
        default=DEFAULT_BATCH_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default: {DEFAULT_BATCH_CONCURRENCY})",
    )
    batch.add_argument("-m", "--model", help="the model of lines that name none")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    batch.set_defaults(run=_batch)

    models = commands.add_parser("models", help="list the known models and what they accept")
    models.add_argument("--json", action="store_true", help="print the catalog as JSON")
    models.set_defaults(run=_models)

    from .demo import DEFAULT_COUNT, DEFAULT_DEMO_DIR

    demo = commands.add_parser(
        "demo", help="run a batch end to end against the bundled fake server (no key, no network)"
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_DEMO_DIR),
        metavar="DIR",
        help=f"where the images go (default: ./{DEFAULT_DEMO_DIR})",
    )
    demo.add_argument(
        "--count",
        type=_count(1),
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"text-to-image requests (default: {DEFAULT_COUNT}; two image-to-image follow)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    demo.set_defaults(run=_demo)
    return parser


# --- commands ---------------------------------------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    key = args.api_key if args.api_key is not None else os.environ.get(ENV_API_KEY)
    if not key or not key.strip():
        raise CommandError(f"no API key: set {ENV_API_KEY} or pass --api-key")
    options: dict[str, Any] = {"api_key": key, "base_url": args.base_url}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    return options


def _output_paths(output: str | None, prompt: str, count: int, extension: str) -> list[Path]:
    """Where ``generate`` puts ``count`` images; see docs/cli.md."""
    if output is None or output.endswith(("/", os.sep)) or Path(output).is_dir():
        directory = Path(output or ".")
        stem = slug(prompt)
    else:
        file = Path(output)
        directory, stem, extension = file.parent, file.stem, file.suffix
    if count == 1:
        return [directory / f"{stem}{extension}"]
    return [directory / f"{stem}-{n}{extension}" for n in range(1, count + 1)]


def _generate(args: argparse.Namespace) -> int:
    from .._client import AsyncImageClient
    from .._outputs.download import safe_filename

    options = _client_options(args)

    def on_retry(event: RetryEvent) -> None:
        print(
            f"{PROG}: attempt {event.attempt} failed ({describe_error(event.cause)}); "
            f"retrying in {event.wait:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    async def run() -> list[Path]:
        async with AsyncImageClient(**options, on_retry=on_retry) as client:
            response = await client.generate(
                args.prompt,
                model=args.model,
                images=args.image,
                size=args.size,
                aspect_ratio=args.aspect_ratio,
                quality=args.quality,
            )
            first = response.data[0].url
            extension = Path(safe_filename(first)).suffix if first else ".png"
            paths = _output_paths(args.output, args.prompt, len(response.data), extension)
            pairs = zip(response.data, paths, strict=True)
            return [await image.save(path) for image, path in pairs]

    for path in anyio.run(run):
        print(path)
    return 0


def _batch(args: argparse.Namespace) -> int:
    from .._client import AsyncImageClient

    jobs = read_batch_file(args.file, default_model=args.model)
    options = _client_options(args)
    options["max_concurrency"] = args.concurrency

    async def run() -> Report:
        async with AsyncImageClient(**options) as client:
            return await run_jobs(
                client, jobs, args.out, concurrency=args.concurrency, progress=not args.no_progress
            )

    report = anyio.run(run)
    print_summary(report, args.out, checkpoint=True, secret=options["api_key"])
    if report.failed:
        raise CommandError(
            f"{len(report.failed)} of {report.total} requests failed; run the same command "
            "again to retry them (the others are not sent again)"
        )
    return 0


def _models(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([attrs.asdict(spec) for spec in CATALOG.values()], indent=2))
    else:
        from .models import models_table

        print(models_table())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, count=args.count, progress=not args.no_progress)


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
