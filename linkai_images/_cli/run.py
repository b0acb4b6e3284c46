"""Running numbered requests for the command line: progress, and saving as they land.

``linkai-images batch`` and ``linkai-images demo`` both end here. The
requests go through the SDK's batch engine (``as_completed``: a bounded
pool, retries, the crash-safe checkpoint), and each image is saved into the
output directory as soon as its request completes, under a stable name
derived from the request's number (``0007-a-red-fox.png``). A request
answered from the checkpoint whose files are already on disk is neither
sent nor downloaded again; one whose files are missing is downloaded from
the URLs on file, not generated again.

With a checkpoint, the run holds its lock from start to end: first it
removes the ``.part`` files that saves killed mid-download left behind, and
after each save it journals where the images went (a *saved* record).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import anyio
import attrs

from .._batch.checkpoint import Checkpoint, saved_record
from .._batch.engine import as_completed
from .._batch.prices import Prices
from .._batch.progress import ProgressEvent, TqdmProgress
from .._client import AsyncImageClient
from .._exceptions import CheckpointError, DownloadError
from .._models import BatchItem, ImageRequest, ImageResponse
from .._outputs.download import remove_stale_parts, safe_filename
from .._outputs.gallery import GallerySummary
from .._outputs.manifest import MANIFEST_NAME, failure_row
from .._outputs.recorder import OutputRecorder
from .._retry import RetryEvent
from .errors import describe_error

__all__ = [
    "CHECKPOINT_NAME",
    "Job",
    "Report",
    "image_paths",
    "run_jobs",
    "slug",
]

#: The checkpoint file a batch keeps in its output directory.
CHECKPOINT_NAME = ".linkai-checkpoint.jsonl"
#: Seconds between two plain progress lines (when no tqdm bar is shown).
PROGRESS_INTERVAL = 2.0
#: Saves waiting or running at once; the downloader bounds the connections itself.
_SAVES_IN_FLIGHT = 32
_SLUG_LENGTH = 40
_NOT_WORD = re.compile(r"[\W_]+")


@attrs.frozen(kw_only=True)
class Job:
    """One request of a command-line batch.

    Attributes:
        number: names its files (``0007-...``): the input line of a batch file.
        request: the request, already checked.
        label: how messages name it (``line 7``).
        metadata: the batch file's other columns (CSV) or keys (JSON Lines) of
            this line, as read: carried with the request into the outputs,
            never sent.
    """

    number: int
    request: ImageRequest
    label: str
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


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
    resend_uncertain: bool = False,
    stream: TextIO | None = None,
) -> Report:
    """Run ``jobs`` through the batch engine, saving each image as its request completes.

    Args:
        client: the client (its ``max_concurrency`` at least ``concurrency``).
        jobs: the requests, checked.
        directory: where the images go (created if missing).
        concurrency: requests in flight at once.
        progress: show progress on ``stream``.
        checkpoint: journal the requests in ``directory/checkpoint_name``,
            answer those already done from it, and leave those an earlier
            run may have paid for unsent (uncertain).
        checkpoint_name: the checkpoint's file name (a shard has its own).
        manifest_name: the manifest's file name (a shard has its own); the
            run ends by merging every manifest of ``directory`` into
            ``metadata.jsonl`` and writing ``index.html``.
        provenance: write each request's prompt and parameters into its PNGs.
        prices: what one image costs (needed by ``max_cost``).
        max_cost: stop starting requests once their estimated cost would pass it.
        resend_uncertain: send the uncertain requests anyway.
        stream: where progress goes; default ``sys.stderr``.

    Returns:
        The counts, the files saved, the failures and the retries.

    Raises:
        CheckpointError: another run holds the output directory's checkpoint.
    """
    started = time.monotonic()
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    journal = await Checkpoint.open(directory / checkpoint_name) if checkpoint else None
    try:
        if journal is not None:
            # Under the lock: no other run saves these names (shards own disjoint numbers).
            numbers = {f"{job.number:04d}" for job in jobs}
            await remove_stale_parts(directory, lambda name: name.partition("-")[0] in numbers)
        return await _run(
            client,
            jobs,
            directory,
            journal,
            concurrency=concurrency,
            display=_Display(len(jobs), show=progress, stream=stream or sys.stderr),
            manifest_name=manifest_name,
            provenance=provenance,
            prices=prices,
            max_cost=max_cost,
            resend_uncertain=resend_uncertain,
            started=started,
        )
    finally:
        if journal is not None:
            await journal.aclose()


async def _run(
    client: AsyncImageClient,
    jobs: list[Job],
    directory: Path,
    journal: Checkpoint | None,
    *,
    concurrency: int,
    display: _Display,
    manifest_name: str,
    provenance: bool,
    prices: Prices | None,
    max_cost: float | None,
    resend_uncertain: bool,
    started: float,
) -> Report:
    report = Report(total=len(jobs))
    saves = anyio.Semaphore(_SAVES_IN_FLIGHT)
    recorder = await OutputRecorder.open(
        directory, provenance=provenance, manifest_name=manifest_name
    )

    async def save(job: Job, item: BatchItem, response: ImageResponse) -> None:
        from_checkpoint = item.index in display.skipped
        try:
            paths = image_paths(directory, job, response)
            if from_checkpoint and all([await anyio.Path(p).is_file() for p in paths]):
                report.kept += len(paths)  # saved by an earlier run: not downloaded again
                for position, path in enumerate(paths):
                    if not recorder.has(path):  # saved just before a crash: the line is owed
                        await recorder.record(
                            job.number, path, job.request, response, position, job.metadata
                        )
            else:
                for position, (image, path) in enumerate(zip(response.data, paths, strict=True)):
                    text = await recorder.text(job.number, job.request, response, position)
                    await image.save(path, provenance=text)
                    await recorder.record(
                        job.number, path, job.request, response, position, job.metadata
                    )
                if journal is not None and item.fingerprint is not None:
                    pairs = [
                        (image.url, path.name)
                        for image, path in zip(response.data, paths, strict=True)
                    ]
                    with contextlib.suppress(CheckpointError):  # warned about at close
                        await journal.write(saved_record(item.fingerprint, item.index, pairs))
            report.saved.extend((job, path) for path in paths)
            if from_checkpoint:
                report.skipped += 1
            else:
                report.done += 1
        except (DownloadError, OSError) as exc:
            report.failed.append((job, exc))
        finally:
            saves.release()

    try:
        async with anyio.create_task_group() as tg:
            batch = as_completed(
                client,
                [job.request for job in jobs],
                concurrency=concurrency,
                progress=display,
                checkpoint=journal,
                prices=prices,
                max_cost=max_cost,
                resend_uncertain=resend_uncertain,
            )
            async with batch as results:
                async for item in results:
                    job = jobs[item.index]
                    if item.response is None:
                        report.failed.append((job, item.error or RuntimeError("no result")))
                        continue
                    await saves.acquire()
                    tg.start_soon(save, job, item, item.response)
    finally:
        report.retries = [(jobs[index], event) for index, event in display.retries]
        report.failed.sort(key=lambda failure: failure[0].number)
        report.saved.sort(key=lambda saved: (saved[0].number, saved[1].name))
        failures = [
            failure_row(
                label=job.label, request=job.request, error=describe_error(exc), extra=job.metadata
            )
            for job, exc in report.failed
        ]
        report.gallery = await recorder.finish(failures)
        report.elapsed = time.monotonic() - started
    return report
