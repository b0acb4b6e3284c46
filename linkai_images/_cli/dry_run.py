"""``linkai-images batch FILE --dry-run``: what the batch would send and cost; nothing is sent.

It reads and checks the file as a real run would, then prints the plan: the
requests by model, size and quality, the distinct reference images and
their size, the invalid lines, what a resume would skip (from the
checkpoint in ``--out``), and with ``--prices`` the estimated cost. No key
is needed: nothing talks to the API.
"""

from __future__ import annotations

import re
from pathlib import Path

from .._batch.plan import answered_by_checkpoint, build_plan, describe_plan
from .._batch.prices import Prices
from .run import Job

__all__ = ["print_dry_run"]

_LINE = re.compile(r"line (\d+): (.*)", re.S)


def print_dry_run(
    jobs: list[Job],
    bad_lines: list[str],
    *,
    checkpoint: Path,
    prices: Prices | None,
    resend_uncertain: bool = False,
) -> int:
    """Print the plan of ``jobs`` (and the bad lines); the exit status: 1 if a line is bad."""
    invalid = []
    for problem in bad_lines:
        match = _LINE.fullmatch(problem)
        invalid.append((int(match[1]), match[2]) if match else (0, problem))
    requests = [job.request for job in jobs]
    states = answered_by_checkpoint(checkpoint, requests)
    plan = build_plan(
        len(jobs) + len(invalid),
        [(job.number, job.request) for job in jobs],
        invalid,
        resumed=states.resumed,
        uncertain=None if resend_uncertain else states.uncertain,
        prices=prices,
    )
    print("dry run: nothing was sent")
    for line in describe_plan(plan):
        print(line)
    if plan.resumed:
        skipped = [job.label for job, done in zip(jobs, states.resumed, strict=True) if done]
        print(f"a resume skips (already in {checkpoint.name}): {_listed(skipped)}")
    if plan.uncertain:
        held = [job.label for job, held in zip(jobs, states.uncertain, strict=True) if held]
        print(f"uncertain (not sent again): {_listed(held)}")
    if plan.invalid:
        print(f"invalid lines ({len(plan.invalid)}; a real run refuses the file):")
        for number, message in plan.invalid:
            print(f"  line {number}: {message}")
        return 1
    return 0


def _listed(labels: list[str]) -> str:
    return ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
