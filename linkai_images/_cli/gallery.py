"""``linkai-images gallery DIR``: merge a batch directory's manifests and write its index.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._outputs.gallery import write_gallery
from .options import CommandError

__all__ = ["add_command"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gallery`` to the command parsers."""
    gallery = commands.add_parser(
        "gallery",
        help="write DIR/index.html (and merge DIR/metadata*.jsonl into metadata.jsonl)",
        description="Merge the manifests of a batch output directory (one per shard of "
        "`batch --shard`) into metadata.jsonl and write index.html, a page that shows every "
        "image with its prompt and settings, and the failures with their reasons.",
    )
    gallery.add_argument("directory", type=Path, metavar="DIR", help="a batch output directory")
    gallery.add_argument("--title", help="the page's heading (default: the directory's name)")
    gallery.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the gallery and say where it is."""
    if not args.directory.is_dir():
        raise CommandError(f"{args.directory}: no such directory")
    summary = write_gallery(args.directory, title=args.title)
    failed = f", {summary.failures} failed" if summary.failures else ""
    print(f"{summary.path} ({summary.images} images{failed}); manifest: {summary.manifest}")
    return 0
