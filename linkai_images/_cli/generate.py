"""``linkai-images generate``: one prompt, its images saved."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import anyio

from .._client import AsyncImageClient
from .._exceptions import DownloadError
from .._models import GeneratedImage
from .._outputs.download import safe_filename
from .._retry import RetryEvent
from .errors import describe_error
from .options import PROG, CommandError, client_options
from .run import slug

__all__ = ["add_command", "output_paths"]


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    """Add ``generate`` to the command parsers."""
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
        help="where to save: a .png file (several images get -1, -2, ...), or a directory: "
        "one that exists or a path ending in / (default: the current directory, files "
        "named after the prompt)",
    )
    generate.set_defaults(run=run)


#: What the platform delivers, by the suffix that names it: a file of -o must match.
DELIVERED = {".png": "image/png"}


def is_directory(output: str | None) -> bool:
    """Whether ``-o`` names a directory: none given, one that exists, or a path ending in ``/``."""
    return output is None or output.endswith(("/", os.sep)) or Path(output).is_dir()


def check_output(output: str | None) -> None:
    """Refuse, before anything is sent, an ``-o`` file whose suffix is not the delivered type.

    Raises:
        CommandError: the suffix names another type, or there is none.
    """
    if is_directory(output):
        return
    assert output is not None
    suffix = Path(output).suffix
    if suffix.lower() not in DELIVERED:
        named = f"its suffix {suffix!r}" if suffix else "it has no suffix"
        raise CommandError(
            f"-o {output}: images come as PNG, but {named}; name a {', '.join(DELIVERED)} "
            f"file, or a directory (one that exists, or end the path with {os.sep})"
        )


def output_paths(output: str | None, prompt: str, count: int, extension: str) -> list[Path]:
    """Where ``generate`` puts ``count`` images; see docs/cli.md."""
    if output is None or is_directory(output):
        directory = Path(output or ".")
        stem = slug(prompt)
    else:
        file = Path(output)
        directory, stem, extension = file.parent, file.stem, file.suffix
    if count == 1:
        return [directory / f"{stem}{extension}"]
    return [directory / f"{stem}-{n}{extension}" for n in range(1, count + 1)]


def run(args: argparse.Namespace) -> int:
    """Generate, save, print where the images went."""
    check_output(args.output)
    options = client_options(args)

    def on_retry(event: RetryEvent) -> None:
        print(
            f"{PROG}: attempt {event.attempt} failed ({describe_error(event.cause)}); "
            f"retrying in {event.wait:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    async def generate() -> tuple[list[Path], list[tuple[GeneratedImage, Exception]]]:
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
            paths = output_paths(args.output, args.prompt, len(response.data), extension)
            return await _save(zip(response.data, paths, strict=True))

    saved, lost = anyio.run(generate)
    for path in saved:
        print(path)
    if lost:
        # Paid for and not on disk: the image must not be lost with the error.
        for image, _ in lost:
            print(image.url)
        many = len(lost) > 1
        raise CommandError(
            f"{'images were' if many else 'the image was'} generated (and billed) but not saved: "
            f"{describe_error(lost[0][1])}; {'their URLs are' if many else 'its URL is'} printed "
            "above: download from there, or save into another place"
        )
    return 0


async def _save(
    pairs: Iterable[tuple[GeneratedImage, Path]],
) -> tuple[list[Path], list[tuple[GeneratedImage, Exception]]]:
    """Save each image; an image that cannot be saved is kept, with its error, for the report.

    An inline image (no URL to print) that cannot be saved where asked goes
    to the temporary directory instead.
    """
    saved: list[Path] = []
    lost: list[tuple[GeneratedImage, Exception]] = []
    for image, path in pairs:
        try:
            saved.append(await image.save(path))
        except (DownloadError, OSError) as exc:
            if image.url is None:
                with contextlib.suppress(DownloadError, OSError):
                    saved.append(await image.save(Path(tempfile.gettempdir()) / path.name))
                    continue
            lost.append((image, exc))
    return saved, lost
