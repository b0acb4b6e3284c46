"""``linkai-images batch``: a JSON Lines or CSV file of requests, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from .._client import AsyncImageClient
from .batch_file import read_batch_file
from .options import CommandError, client_options, count
from .run import CHECKPOINT_NAME, Report, print_summary, run_jobs
from .shard import parse_shard

__all__ = ["DEFAULT_BATCH_CONCURRENCY", "add_command"]

#: Requests a batch keeps in flight unless ``--concurrency`` says otherwise.
DEFAULT_BATCH_CONCURRENCY = 8


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], api: argparse.ArgumentParser
) -> None:
    """Add ``batch`` to the command parsers."""
    batch = commands.add_parser(
        "batch", parents=[api], help="run a JSONL or CSV file of requests, resumably"
    )
    batch.add_argument("file", type=Path, help="a .jsonl or .csv file of requests")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    batch.add_argument(
        "--concurrency",
        type=count(1),
        default=DEFAULT_BATCH_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default: {DEFAULT_BATCH_CONCURRENCY})",
    )
    batch.add_argument("-m", "--model", help="the model of lines that name none")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    batch.add_argument(
        "--shard",
        type=parse_shard,
        metavar="I/N",
        help="run only requests I, I+N, I+2N, ... (counted from 0), so N workers can share "
        "one file and one --out; each keeps its own checkpoint (see docs/scale-out.md)",
    )
    batch.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the file's requests, save the images, print the summary."""
    jobs = read_batch_file(args.file, default_model=args.model)
    checkpoint_name = CHECKPOINT_NAME
    if args.shard is not None:
        jobs = args.shard.select(jobs)
        checkpoint_name = CHECKPOINT_NAME.replace(".jsonl", f"{args.shard.suffix}.jsonl")
        if not jobs:
            print(f"shard {args.shard.index}/{args.shard.count}: no requests (the file has fewer)")
            return 0
    options = client_options(args)
    options["max_concurrency"] = args.concurrency

    async def batch() -> Report:
        async with AsyncImageClient(**options) as client:
            return await run_jobs(
                client,
                jobs,
                args.out,
                concurrency=args.concurrency,
                progress=not args.no_progress,
                checkpoint_name=checkpoint_name,
            )

    report = anyio.run(batch)
    secret = options["api_key"]
    print_summary(report, args.out, checkpoint=True, checkpoint_name=checkpoint_name, secret=secret)
    if report.failed:
        raise CommandError(
            f"{len(report.failed)} of {report.total} requests failed; run the same command "
            "again to retry them (the others are not sent again)"
        )
    return 0
