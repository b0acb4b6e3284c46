"""What the command line tells the user at the end: one line per error, a summary by kind.

A batch's failures are sorted by ``FailureKind`` (the SDK's own
classification), each kind under a heading that says what to do about it:
a rerun fixes transient failures; uncertain requests may already be paid
for and are resent only on request; refused ones fail again the same way;
account and invalid-input failures need a fix first. Requests are named by
their 1-based line in the input file, never by a 0-based index.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from .._exceptions import BatchAbortedError, CostLimitError
from .._failures import FailureKind
from .errors import describe_error, redact
from .run import CHECKPOINT_NAME, Job, Report

__all__ = ["failure_counts", "print_summary"]

#: Failures listed one per line under a heading; the rest are counted. Uncertain
#: requests are all listed: each may be money already spent.
_MAX_LISTED = 10
#: The order of the kinds in the summary: what may cost money first.
_ORDER = (
    FailureKind.UNCERTAIN,
    FailureKind.ACCOUNT,
    FailureKind.REFUSED,
    FailureKind.INVALID,
    FailureKind.TRANSIENT,
)
_ADVICE = {
    FailureKind.UNCERTAIN: (
        "sent, but no image came back: they may have been generated and billed, so a rerun "
        "does not send them again"
    ),
    FailureKind.ACCOUNT: (
        "the account was refused (or a spending cap reached): fix the key (--api-key or "
        "LINKAI_API_KEY) or the credits, then run the same command again"
    ),
    FailureKind.REFUSED: (
        "the platform refuses these and will again: change the prompt or the model "
        "(`linkai-images models`), then run the same command again"
    ),
    FailureKind.INVALID: "fix these lines, then run the same command again",
    FailureKind.TRANSIENT: (
        "run the same command again to retry them (the requests that succeeded are not sent again)"
    ),
}
_RESEND_HINT = (
    "to send them anyway (each may be billed a second time), run the same command again "
    "with --resend-uncertain"
)
_PROMPT_SHOWN = 60


def _prompt(text: str) -> str:
    shown = text if len(text) <= _PROMPT_SHOWN else text[: _PROMPT_SHOWN - 1] + "…"
    return json.dumps(shown, ensure_ascii=False)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _by_kind(report: Report) -> dict[FailureKind, list[tuple[Job, BaseException]]]:
    kinds: dict[FailureKind, list[tuple[Job, BaseException]]] = {kind: [] for kind in _ORDER}
    for job, exc in report.failed:
        kinds[FailureKind.of(exc)].append((job, exc))
    return kinds


def failure_counts(report: Report) -> str:
    """The failures counted by kind, most costly first: ``2 uncertain, 1 transient``."""
    return ", ".join(
        f"{len(failures)} {kind.value}" for kind, failures in _by_kind(report).items() if failures
    )


def print_summary(
    report: Report,
    directory: Path,
    *,
    checkpoint: bool,
    checkpoint_name: str = CHECKPOINT_NAME,
    secret: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print the end-of-run summary: counts, where the files are, the failures by kind."""
    out = stream or sys.stdout
    kinds = _by_kind(report)
    uncertain = len(kinds[FailureKind.UNCERTAIN])
    print(
        f"done {report.done}, failed {len(report.failed) - uncertain}, uncertain {uncertain}, "
        f"skipped (checkpoint) {report.skipped}, retried {len(report.retries)}, "
        f"elapsed {report.elapsed:.1f} s",
        file=out,
    )
    kept = f"; {report.kept} already saved by an earlier run" if report.kept else ""
    print(f"images: {_shown(directory)}{os.sep} ({len(report.saved)} files{kept})", file=out)
    if checkpoint:
        print(f"checkpoint: {_shown(directory / checkpoint_name)}", file=out)
    if report.gallery is not None:
        print(
            f"manifest: {_shown(report.gallery.manifest)}; gallery: {_shown(report.gallery.path)}",
            file=out,
        )
    for kind, failures in kinds.items():
        if failures:
            _print_kind(kind, failures, secret=secret, out=out, checkpoint=checkpoint)


def _print_kind(
    kind: FailureKind,
    failures: list[tuple[Job, BaseException]],
    *,
    secret: str | None,
    out: TextIO,
    checkpoint: bool,
) -> None:
    advice = _ADVICE[kind]
    if kind is FailureKind.UNCERTAIN and not checkpoint:  # no journal: a rerun sends everything
        advice = advice.partition(", so a rerun")[0]
    print(f"{kind.value} ({len(failures)}): {advice}", file=out)
    aborted = [job for job, exc in failures if isinstance(exc, BatchAbortedError)]
    capped = [exc for _, exc in failures if isinstance(exc, CostLimitError)]
    unsent = (BatchAbortedError, CostLimitError)
    listed = [(job, exc) for job, exc in failures if not isinstance(exc, unsent)]
    limit = len(listed) if kind is FailureKind.UNCERTAIN else _MAX_LISTED
    for job, exc in listed[:limit]:
        detail = redact(describe_error(exc), secret)
        if kind is FailureKind.UNCERTAIN:
            detail = f"{_prompt(job.request.prompt)}: {detail}"
        print(f"  {job.label}: {detail}", file=out)
    if len(listed) > limit:
        print(f"  ... and {len(listed) - limit} more", file=out)
    if aborted:
        print(
            f"  {len(aborted)} not sent: the batch stopped after the account-level error above",
            file=out,
        )
    if capped:
        print(
            f"  {len(capped)} not sent: the estimated cost would pass --max-cost "
            f"{capped[0].max_cost:g} ({capped[0].spent:g} sent); run again with a higher cap "
            "to send them",
            file=out,
        )
    if kind is FailureKind.UNCERTAIN and checkpoint:
        print(f"  {_RESEND_HINT}", file=out)
