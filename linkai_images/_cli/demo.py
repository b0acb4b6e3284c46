"""``linkai-images demo``: the main job end to end, against the bundled fake server.

The fake LinkAI API (``linkai_images.testing``) is served on loopback in
this process, so the demo needs no key and no network, yet every request
goes through real HTTP. The job is what ``linkai-images batch`` does: a
batch of text-to-image requests across the six models and their sizes,
plus image-to-image requests from a local reference PNG (read and encoded
as a data URI by the SDK), run through ``as_completed`` with each image
saved as soon as it lands. The fake answers after 0.2-0.5 s and serves a
few 503s with a short ``Retry-After``; the client retries them with its
real backoff (short waits, not ``set_testing``), and the demo prints what
was retried, where the images are and how long it all took.

Each run overwrites the images of the previous one (stable names) and keeps
no checkpoint: the fake's image URLs die with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from .._client import AsyncImageClient
from .._exceptions import APIStatusError
from .._models import ImageRequest
from .._retry import RetryPolicy
from .options import count
from .run import Job, Report, run_jobs
from .summary import print_summary

if TYPE_CHECKING:
    from ..testing import FakeLinkAI

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_DEMO_DIR",
    "DEMO_RETRY_POLICY",
    "add_command",
    "demo_jobs",
    "run_demo",
]

#: Where the demo's images go, under the current directory.
DEFAULT_DEMO_DIR = "linkai-demo-output"
#: Text-to-image requests in the demo (two image-to-image requests follow).
DEFAULT_COUNT = 12
#: Requests in flight at once.
DEMO_CONCURRENCY = 4
#: The fake's answer time, uniform between these seconds.
DEMO_LATENCY = (0.2, 0.5)
#: The ``Retry-After`` of the injected 503s, in seconds.
DEMO_RETRY_AFTER = 0.25
#: The SDK's retry machinery as in production, with waits cut to fit a demo.
DEMO_RETRY_POLICY = RetryPolicy(max_attempts=4, timeout=30.0, wait_initial=0.1, wait_max=0.5)
REFERENCE_NAME = "reference.png"

# prompt, model, size, aspect ratio, quality
_TEXT_TO_IMAGE: tuple[tuple[str, str, str | None, str | None, str | None], ...] = (
    ("a lighthouse on a cliff at dawn, oil painting", "gpt-image-2", "2K", "16:9", "high"),
    ("a red fox asleep in fresh snow", "gpt-image-2", "1K", "1:1", "low"),
    ("a tea house in misty mountains, ink wash", "doubao-seedream-4.5", "2K", "3:4", None),
    ("a neon street market in the rain", "doubao-seedream-4.5", "4K", "21:9", None),
    ("a paper boat on a puddle, macro photo", "doubao-seedream-4.0", "2K", None, None),
    ("an astronaut tending a vegetable garden", "gemini-3-pro-image-preview", "1K", "4:3", None),
    ("a stained glass owl", "gemini-3-pro-image-preview", "2K", "1:1", None),
    ("isometric cutaway of a cosy library", "gemini-3.1-flash-image-preview", "512", "16:9", None),
    ("a bowl of ramen, studio lighting", "gemini-3.1-flash-image-preview", "1K", "9:16", None),
    ("a whale made of clouds", "gemini-2.5-flash-image", None, "3:2", None),
    ("a robot painting its self-portrait", "gpt-image-2", "4K", "9:16", "medium"),
    ("sunflowers in a blue vase, impressionist", "doubao-seedream-4.0", "4K", "5:4", None),
)
# prompt, model, size, aspect ratio: each starts from the local reference image
_IMAGE_TO_IMAGE: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("turn this into a watercolour postcard", "gemini-2.5-flash-image", None, "4:3"),
    ("add a hot-air balloon to the sky", "doubao-seedream-4.5", "2K", "16:9"),
)
#: Prompts answered 503 before they succeed, and how many times.
_FAULTS = ((_TEXT_TO_IMAGE[1][0], 2), (_IMAGE_TO_IMAGE[0][0], 1))


def demo_jobs(count: int, reference: Path) -> list[Job]:
    """``count`` text-to-image jobs (cycling through the table), then the image-to-image ones."""
    jobs = []
    for n in range(count):
        prompt, model, size, ratio, quality = _TEXT_TO_IMAGE[n % len(_TEXT_TO_IMAGE)]
        if n >= len(_TEXT_TO_IMAGE):
            prompt = f"{prompt}, variation {n // len(_TEXT_TO_IMAGE) + 1}"
        request = ImageRequest(
            prompt=prompt, model=model, size=size, aspect_ratio=ratio, quality=quality
        )
        jobs.append(Job(number=n + 1, request=request, label=f"request {n + 1}"))
    for prompt, model, size, ratio in _IMAGE_TO_IMAGE:
        number = len(jobs) + 1
        request = ImageRequest(
            prompt=prompt, model=model, images=[reference], size=size, aspect_ratio=ratio
        )
        jobs.append(Job(number=number, request=request, label=f"request {number}"))
    return jobs


def _describe(request: ImageRequest) -> str:
    fields = [request.model or "", request.size or "", request.aspect_ratio or "",
              request.quality or ""]  # fmt: skip
    text = " ".join(field for field in fields if field)
    return f"{text}, from {REFERENCE_NAME}" if request.images else text


def _cause(exc: BaseException) -> str:
    if isinstance(exc, APIStatusError):
        return f"{exc.status_code} {httpx.codes.get_reason_phrase(exc.status_code)}".rstrip()
    return type(exc).__name__


def _png_size(path: Path) -> str:
    from ..testing import png_size

    try:
        with open(path, "rb") as file:
            width, height = png_size(file.read(24))
    except (OSError, ValueError):
        return "?"
    return f"{width}x{height}"


def _print_report(report: Report, directory: Path, fake: FakeLinkAI) -> None:
    out = sys.stdout
    print(f"\nsaved {len(report.saved)} images in {directory}:", file=out)
    names = [(path.name, _png_size(path), _describe(job.request)) for job, path in report.saved]
    name_width = max((len(name) for name, _, _ in names), default=0)
    for name, size, what in names:
        print(f"  {name.ljust(name_width)}  {size.rjust(7)}  {what}", file=out)
    if report.retries:
        print(f"\nretried {len(report.retries)} times (503s retried by the SDK):", file=out)
        for job, event in report.retries:
            print(
                f"  {job.label} ({job.request.model}): attempt {event.attempt} got "
                f"{_cause(event.cause)}; retried after {event.wait:.2f} s",
                file=out,
            )
    faulted = sum(1 for request in fake.requests if request.fault is not None)
    print(
        f"\nthe fake answered {fake.request_count} requests: {fake.images_generated} images, "
        f"{faulted} injected 503s",
        file=out,
    )


def run_demo(directory: Path, *, count: int = DEFAULT_COUNT, progress: bool = True) -> int:
    """Run the demo; print where the images are, what was retried, how long it took.

    Args:
        directory: where the images go (created if missing).
        count: text-to-image requests.
        progress: show progress on stderr.

    Returns:
        The exit status: 0 when every request produced its image.
    """
    from ..testing import FakeLinkAI, Fault, make_png

    started = time.monotonic()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    reference = directory / REFERENCE_NAME
    reference.write_bytes(make_png(96, 64, (214, 142, 58)))
    jobs = demo_jobs(count, reference)
    low, high = DEMO_LATENCY
    fake = FakeLinkAI(latency=lambda rng: rng.uniform(low, high), seed=7)
    for prompt, times in _FAULTS:
        fake.fail(Fault.status(503, retry_after=DEMO_RETRY_AFTER), prompt=prompt, times=times)
    injected = sum(times for _, times in _FAULTS)
    t2i = len(jobs) - len(_IMAGE_TO_IMAGE)
    models = len({job.request.model for job in jobs})
    with fake.serve() as server:
        print(
            f"linkai-images demo: {len(jobs)} requests ({t2i} text-to-image, "
            f"{len(_IMAGE_TO_IMAGE)} image-to-image from {reference.name}) on {models} models\n"
            f"against the bundled fake LinkAI API at {server.base_url}, in this process: no key, "
            f"no network;\nanswers take {low}-{high} s, and {injected} answers are 503 "
            f"(Retry-After: {DEMO_RETRY_AFTER} s).",
            flush=True,
        )

        async def run() -> Report:
            async with AsyncImageClient(
                fake.api_key,
                base_url=server.base_url,
                retry_policy=DEMO_RETRY_POLICY,
                max_concurrency=DEMO_CONCURRENCY,
            ) as client:
                return await run_jobs(
                    client,
                    jobs,
                    directory,
                    concurrency=DEMO_CONCURRENCY,
                    progress=progress,
                    checkpoint=False,
                )

        report = anyio.run(run)
    _print_report(report, directory, fake)
    report.elapsed = time.monotonic() - started
    print_summary(report, directory, checkpoint=False)
    return 1 if report.failed else 0


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the command parsers."""
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
        type=count(1),
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"text-to-image requests (default: {DEFAULT_COUNT}; two image-to-image follow)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    return run_demo(args.out, count=args.count, progress=not args.no_progress)
