"""Running numbered requests for the command line: progress, saving as they land, the summary.

``linkai-images batch`` and ``linkai-images demo`` both end here. The
requests go through ``client.as_completed`` (the SDK's batch engine: a
bounded pool, retries, the checkpoint), and each image is saved into the
output directory as soon as its request completes, under a stable name
derived from the request's number (``0007-a-red-fox.png``). A request
answered from the checkpoint whose files are already on disk is neither
sent nor downloaded again.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TextIO

import anyio
import attrs

from .._batch.prices import Prices
from .._batch.progress import ProgressEvent, TqdmProgress
from .._client import AsyncImageClient
from .._exceptions import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BatchAbortedError,
    CostLimitError,
    DownloadError,
    ModelNotAvailableError,
)
from .._models import ImageRequest, ImageResponse
from .._outputs.download import safe_filename
from .._outputs.gallery import GallerySummary
from .._outputs.manifest import MANIFEST_NAME, failure_row
from .._outputs.recorder import OutputRecorder
from .._retry import RetryEvent

__all__ = [
    "CHECKPOINT_NAME",
    "Job",
    "Report",
    "describe_error",
    "image_paths",
    "print_summary",
    "redact",
    "run_jobs",
    "slug",
]

#: The checkpoint file a batch keeps in its output directory.
CHECKPOINT_NAME = ".linkai-checkpoint.jsonl"
#: Seconds between two plain progress lines (when no tqdm bar is shown).
PROGRESS_INTERVAL = 2.0
#: Saves waiting or running at once; the downloader bounds the connections itself.
_SAVES_IN_FLIGHT = 32
#: Failures listed one per line in the summary; the rest are counted.
_MAX_LISTED = 10
_SLUG_LENGTH = 40
_NOT_WORD = re.compile(r"[\W_]+")


@attrs.frozen(kw_only=True)
class Job:
    """One request of a command-line batch.

    Attributes:
        number: names its files (``0007-...``): the input line of a batch file.
        request: the request, already checked.
        label: how messages name it (``line 7``).
    """

    number: int
    request: ImageRequest
    label: str


@attrs.define(kw_only=True)
class Report:
    """What a run did, for the summary."""

    total: int
    done: int = 0
    skipped: int = 0
    kept: int = 0
    failed: list[tuple[Job, BaseException]] = attrs.Factory(list)
    retries: list[tuple[Job, RetryEvent]] = attrs.Factory(list)
    saved: list[tuple[Job, Path]] = attrs.Factory(list)
    elapsed: float = 0.0
    gallery: GallerySummary | None = None


def slug(prompt: str) -> str:
    """A file-name-safe piece of a prompt: lower case words joined by ``-``."""
    words = _NOT_WORD.sub("-", prompt.lower()).strip("-")
    if len(words) > _SLUG_LENGTH:
        cut = words.rfind("-", 0, _SLUG_LENGTH + 1)  # end on a whole word when one fits
        words = words[:cut] if cut > _SLUG_LENGTH // 2 else words[:_SLUG_LENGTH]
    return words.rstrip("-") or "image"


def image_paths(directory: Path, job: Job, response: ImageResponse) -> list[Path]:
    """Where the images of ``job`` go: ``NNNN-slug.ext``, with ``-2``, ``-3`` for more images."""
    stem = f"{job.number:04d}-{slug(job.request.prompt)}"
    paths = []
    for position, image in enumerate(response.data, 1):
        extension = Path(safe_filename(image.url)).suffix if image.url else ".png"
        suffix = "" if position == 1 else f"-{position}"
        paths.append(directory / f"{stem}{suffix}{extension or '.png'}")
    return paths


def _tqdm_bar(stream: TextIO) -> TqdmProgress | None:
    try:
        return TqdmProgress(file=stream, desc="images")
    except ImportError:
        return None


class _Display:
    """The batch's progress handler: counts skips and retries, shows a bar or plain lines.

    A tqdm bar when tqdm is installed and ``stream`` is a terminal; otherwise a
    line every ``PROGRESS_INTERVAL`` seconds (logs and pipes get no ``\\r``).
    """

    def __init__(self, total: int, *, show: bool, stream: TextIO) -> None:
        self.skipped: set[int] = set()
        self.retries: list[tuple[int, RetryEvent]] = []
        self._total = total
        self._stream = stream
        self._bar = _tqdm_bar(stream) if show and stream.isatty() else None
        self._plain = show and self._bar is None
        self._last = time.monotonic()
        self._printed = False

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "skipped":
            self.skipped.add(event.index)
        elif event.kind == "retried" and event.retry is not None:
            self.retries.append((event.index, event.retry))
        if self._bar is not None:
            self._bar(event)
        elif self._plain and event.kind in ("succeeded", "failed", "skipped"):
            now = time.monotonic()
            last = event.done == self._total
            if now - self._last >= PROGRESS_INTERVAL or (last and self._printed):
                self._last, self._printed = now, True
                print(
                    f"  {event.done}/{self._total}: {event.succeeded} done, {event.failed} "
                    f"failed, {event.skipped} from the checkpoint, {event.retried} retries",
                    file=self._stream,
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


async def run_jobs(
    client: AsyncImageClient,
    jobs: list[Job],
    directory: Path,
    *,
    concurrency: int,
    progress: bool = True,
    checkpoint: bool = True,
    checkpoint_name: str = CHECKPOINT_NAME,
    manifest_name: str = MANIFEST_NAME,
    provenance: bool = True,
    prices: Prices | None = None,
    max_cost: float | None = None,
    stream: TextIO | None = None,
) -> Report:
    """Run ``jobs`` through ``client.as_completed``, saving each image as its request completes.

    Args:
        client: the client (its ``max_concurrency`` at least ``concurrency``).
        jobs: the requests, checked.
        directory: where the images go (created if missing).
        concurrency: requests in flight at once.
        progress: show progress on ``stream``.
        checkpoint: journal results in ``directory/.linkai-checkpoint.jsonl``
            and answer requests already there without sending them.
        checkpoint_name: the checkpoint's file name (a shard has its own).
        manifest_name: the manifest's file name (a shard has its own); the
            run ends by merging every manifest of ``directory`` into
            ``metadata.jsonl`` and writing ``index.html``.
        provenance: write each request's prompt and parameters into its PNGs.
        prices: what one image costs (needed by ``max_cost``).
        max_cost: stop starting requests once their estimated cost would pass it.
        stream: where progress goes; default ``sys.stderr``.

    Returns:
        The counts, the files saved, the failures and the retries.
    """
    started = time.monotonic()
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    display = _Display(len(jobs), show=progress, stream=stream or sys.stderr)
    report = Report(total=len(jobs))
    saves = anyio.Semaphore(_SAVES_IN_FLIGHT)
    recorder = await OutputRecorder.open(
        directory, provenance=provenance, manifest_name=manifest_name
    )

    async def save(job: Job, response: ImageResponse, from_checkpoint: bool) -> None:
        try:
            paths = image_paths(directory, job, response)
            if from_checkpoint and all([await anyio.Path(p).is_file() for p in paths]):
                report.kept += len(paths)  # saved by an earlier run: not downloaded again
                for position, path in enumerate(paths):
                    if not recorder.has(path):  # saved just before a crash: the line is owed
                        await recorder.record(job.number, path, job.request, response, position)
            else:
                for position, (image, path) in enumerate(zip(response.data, paths, strict=True)):
                    text = await recorder.text(job.number, job.request, response, position)
                    await image.save(path, provenance=text)
                    await recorder.record(job.number, path, job.request, response, position)
            report.saved.extend((job, path) for path in paths)
            if from_checkpoint:
                report.skipped += 1
            else:
                report.done += 1
        except (DownloadError, OSError) as exc:
            report.failed.append((job, exc))
        finally:
            saves.release()

    journal = directory / checkpoint_name if checkpoint else None
    try:
        async with anyio.create_task_group() as tg:
            batch = client.as_completed(
                [job.request for job in jobs],
                concurrency=concurrency,
                progress=display,
                checkpoint=journal,
                prices=prices,
                max_cost=max_cost,
            )
            async with batch as results:
                async for item in results:
                    job = jobs[item.index]
                    if item.response is None:
                        report.failed.append((job, item.error or RuntimeError("no result")))
                        continue
                    await saves.acquire()
                    tg.start_soon(save, job, item.response, item.index in display.skipped)
    finally:
        report.retries = [(jobs[index], event) for index, event in display.retries]
        report.failed.sort(key=lambda failure: failure[0].number)
        report.saved.sort(key=lambda saved: (saved[0].number, saved[1].name))
        failures = [
            failure_row(label=job.label, request=job.request, error=describe_error(exc))
            for job, exc in report.failed
        ]
        report.gallery = await recorder.finish(failures)
        report.elapsed = time.monotonic() - started
    return report


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (the API key) masked, should it ever appear."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "****")
    return text


def describe_error(exc: BaseException) -> str:
    """One line for a user: what failed and, where it helps, what to do."""
    if isinstance(exc, APIStatusError):
        text = f"the API refused the request ({exc.status_code}): {exc.message}"
        if isinstance(exc, AuthenticationError):
            text += "; check --api-key or LINKAI_API_KEY"
        elif isinstance(exc, ModelNotAvailableError):
            text += "; `linkai-images models` lists the known models"
        return text
    if isinstance(exc, APIConnectionError):
        return f"no answer from the API: {exc.message}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(
    report: Report,
    directory: Path,
    *,
    checkpoint: bool,
    checkpoint_name: str = CHECKPOINT_NAME,
    secret: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print the end-of-run summary: counts, where the files are, what failed."""
    out = stream or sys.stdout
    print(
        f"done {report.done}, failed {len(report.failed)}, skipped (checkpoint) "
        f"{report.skipped}, retried {len(report.retries)}, elapsed {report.elapsed:.1f} s",
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
    if not report.failed:
        return
    print("failed:", file=out)
    aborted = [job for job, exc in report.failed if isinstance(exc, BatchAbortedError)]
    capped = [exc for _, exc in report.failed if isinstance(exc, CostLimitError)]
    unsent = (BatchAbortedError, CostLimitError)
    listed = [(job, exc) for job, exc in report.failed if not isinstance(exc, unsent)]
    for job, exc in listed[:_MAX_LISTED]:
        print(f"  {job.label}: {redact(describe_error(exc), secret)}", file=out)
    if len(listed) > _MAX_LISTED:
        print(f"  ... and {len(listed) - _MAX_LISTED} more", file=out)
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
