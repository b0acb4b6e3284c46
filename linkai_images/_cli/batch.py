"""``linkai-images batch``: a JSON Lines or CSV file of requests, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from .._batch.prices import Prices
from .._client import AsyncImageClient
from .._outputs.manifest import MANIFEST_NAME
from .batch_file import read_batch_file
from .dry_run import print_dry_run
from .options import CommandError, client_options, count
from .run import CHECKPOINT_NAME, Job, Report, run_jobs
from .shard import parse_shard
from .summary import failure_counts, print_summary

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
    outputs = batch.add_argument_group("outputs and spending")
    outputs.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: print the requests by model, size and quality, the reference "
        "images, the invalid lines, what a resume would skip (and the cost, with --prices)",
    )
    outputs.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="a .json or .toml file of prices per image by model and size (docs/batches.md)",
    )
    outputs.add_argument(
        "--max-cost",
        type=_cost,
        metavar="X",
        help="start no request once the estimated cost of those sent would pass X (needs --prices)",
    )
    outputs.add_argument(
        "--no-provenance",
        action="store_true",
        help="save the images exactly as served, without the prompt and parameters "
        "written into each PNG",
    )
    batch.add_argument(
        "--resend-uncertain",
        action="store_true",
        help="send again the requests an earlier run sent without getting their image "
        "(they may have been billed already, so each may be paid twice)",
    )
    batch.set_defaults(run=run)


def _cost(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount >= 0")
    return value


def _prices(args: argparse.Namespace) -> Prices | None:
    if args.prices is None:
        if args.max_cost is not None:
            raise CommandError("--max-cost needs --prices FILE: the SDK knows no prices")
        return None
    try:
        return Prices.load(args.prices)
    except (ValueError, RuntimeError) as exc:
        raise CommandError(f"--prices: {exc}") from None


def _check_priced(jobs: list[Job], prices: Prices, source: Path) -> None:
    """With --max-cost every request needs a price: say which lines have none, send nothing."""
    unpriced = [
        f"{job.label} ({job.request.model} at {job.request.size or 'its default size'})"
        for job in jobs
        if prices.price(job.request.model or "", job.request.size) is None
    ]
    if unpriced:
        more = f" and {len(unpriced) - 5} more" if len(unpriced) > 5 else ""
        raise CommandError(
            f"--max-cost: no price in {source} for {', '.join(unpriced[:5])}{more}; "
            "nothing was sent"
        )


def run(args: argparse.Namespace) -> int:
    """Run the file's requests, save the images, print the summary."""
    prices = _prices(args)
    bad_lines: list[str] | None = [] if args.dry_run else None
    jobs = read_batch_file(args.file, default_model=args.model, bad_lines=bad_lines)
    checkpoint_name = CHECKPOINT_NAME
    manifest_name = MANIFEST_NAME
    if args.shard is not None:
        jobs = args.shard.select(jobs)
        checkpoint_name = CHECKPOINT_NAME.replace(".jsonl", f"{args.shard.suffix}.jsonl")
        manifest_name = MANIFEST_NAME.replace(".jsonl", f"{args.shard.suffix}.jsonl")
    if bad_lines is not None:
        return print_dry_run(
            jobs,
            bad_lines,
            checkpoint=args.out / checkpoint_name,
            prices=prices,
            resend_uncertain=args.resend_uncertain,
        )
    if prices is not None and args.max_cost is not None:
        _check_priced(jobs, prices, args.prices)
    if args.shard is not None and not jobs:
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
                manifest_name=manifest_name,
                provenance=not args.no_provenance,
                prices=prices,
                max_cost=args.max_cost,
                resend_uncertain=args.resend_uncertain,
            )

    report = anyio.run(batch)
    secret = options["api_key"]
    print_summary(report, args.out, checkpoint=True, checkpoint_name=checkpoint_name, secret=secret)
    if report.failed:
        raise CommandError(
            f"{len(report.failed)} of {report.total} requests failed ({failure_counts(report)}); "
            "the summary above says what to do about each kind"
        )
    return 0
