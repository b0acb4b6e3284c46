"""A batch's plan before anything is sent: what it asks for, what it would cost, what resumes.

``client.plan(requests, prices=...)`` and ``linkai-images batch --dry-run``
check every request exactly as a batch would, then count them by model,
size and quality, list the distinct reference images and their size, and,
given a checkpoint, tell which requests a resume would answer from it.
Nothing is sent and nothing is downloaded; local reference files are only
looked at (their size, and their content for the resume fingerprint).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from .._catalog import get_model
from .._models import ImageRequest
from .checkpoint import read_journal
from .engine import BatchClient, CheckpointPath, RequestSource, check_source, materialize
from .fingerprint import _fingerprint
from .prices import PriceArg, Prices, to_prices

__all__ = [
    "BatchPlan",
    "CheckpointStates",
    "PlanGroup",
    "answered_by_checkpoint",
    "build_plan",
    "describe_plan",
    "plan_batch",
    "plan_requests",
    "reference_footprint",
]


@attrs.frozen(kw_only=True)
class PlanGroup:
    """The requests of a plan that share a model, a size and a quality.

    Attributes:
        model: the model code.
        size: the size tier (the model's default when the requests give none).
        quality: the quality (the model's default when the requests give none).
        count: requests in the group (those a resume would answer included).
        to_send: requests of the group that would be sent.
        unit_price: the price of one image, when prices were given and name it.
        cost: ``unit_price * to_send``, when known.
    """

    model: str
    size: str | None
    quality: str | None
    count: int
    to_send: int
    unit_price: float | None = None
    cost: float | None = None


@attrs.frozen(kw_only=True)
class BatchPlan:
    """What a batch would do, found without sending anything (``client.plan``).

    Attributes:
        requests: requests in the input.
        invalid: ``(index, message)`` for each request that fails its checks
            (a batch would refuse them; ``generate_many`` sends nothing then).
        groups: the valid requests by model, size and quality.
        reference_images: distinct reference images (by URL, by file, by content).
        reference_bytes: their total size in bytes, for those whose size is
            known without a download (local files, data URIs, bytes).
        remote_references: distinct reference URLs (their size is unknown).
        resumed: valid requests a checkpoint would answer (not sent again).
        uncertain: valid requests an earlier run sent with no result on file:
            they may have been billed, so a resume does not send them unless
            told to (``resend_uncertain``).
        to_send: valid requests that would be sent.
        estimated_cost: the cost of the requests to send, one image each,
            when prices were given (``None`` otherwise).
        unpriced: requests to send whose model and size have no price.
        currency: the prices' currency, when they name one.
    """

    requests: int
    invalid: tuple[tuple[int, str], ...]
    groups: tuple[PlanGroup, ...]
    reference_images: int
    reference_bytes: int
    remote_references: int
    resumed: int
    to_send: int
    estimated_cost: float | None = None
    unpriced: int = 0
    currency: str | None = None
    uncertain: int = 0

    @property
    def valid(self) -> int:
        """Requests that pass their checks."""
        return self.requests - len(self.invalid)


def _data_uri_bytes(text: str) -> tuple[str, int]:
    _, _, payload = text.partition(",")
    try:
        size = len(base64.b64decode(payload, validate=False))
    except (binascii.Error, ValueError):
        size = len(payload)
    return "data:" + hashlib.sha256(text.encode()).hexdigest(), size


def reference_footprint(image: object) -> tuple[str, int | None, bool]:
    """``(identity, bytes or None, remote)`` of one reference image (may stat a file).

    Two references with the same identity are one distinct image.
    """
    if isinstance(image, str) and image[:8].lower().startswith(("http://", "https://")):
        return "url:" + image, None, True
    if isinstance(image, str) and image[:5].lower() == "data:":
        identity, size = _data_uri_bytes(image)
        return identity, size, False
    if isinstance(image, (str, os.PathLike)):
        path = os.path.realpath(image)
        try:
            return "file:" + path, os.stat(path).st_size, False
        except OSError:
            return "file:" + path, None, False
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "bytes:" + hashlib.sha256(image).hexdigest(), len(image), False
    return f"object:{id(image)}", None, False


def _effective(request: ImageRequest) -> tuple[str, str | None, str | None]:
    model = request.model or ""
    spec = get_model(model)
    size = request.size if request.size is not None else (spec.default_size if spec else None)
    quality = request.quality
    if quality is None and spec is not None:
        quality = spec.default_quality
    return model, size, quality


def _references(requests: Sequence[ImageRequest]) -> tuple[int, int, int]:
    seen: dict[str, int | None] = {}
    remote = 0
    for request in requests:
        for image in request.images:
            identity, size, is_remote = reference_footprint(image)
            if identity not in seen:
                seen[identity] = size
                remote += is_remote
    return len(seen), sum(size for size in seen.values() if size is not None), remote


def build_plan(
    total: int,
    checked: Sequence[tuple[int, ImageRequest]],
    invalid: Iterable[tuple[int, str]],
    *,
    resumed: Sequence[bool],
    prices: Prices | None,
    uncertain: Sequence[bool] | None = None,
) -> BatchPlan:
    """Count checked requests into a ``BatchPlan`` (blocking: stats reference files).

    Args:
        total: requests in the input.
        checked: ``(index, request)`` of the valid requests, model filled in.
        invalid: ``(index, message)`` of the others.
        resumed: for each checked request, whether a checkpoint answers it.
        prices: the prices, if any.
        uncertain: for each checked request, whether a resume holds it back
            as uncertain (not sent).
    """
    held = list(uncertain) if uncertain is not None else [False] * len(checked)
    counts: dict[tuple[str, str | None, str | None], list[int]] = collections.defaultdict(
        lambda: [0, 0]
    )
    for (_, request), answered, held_back in zip(checked, resumed, held, strict=True):
        entry = counts[_effective(request)]
        entry[0] += 1
        entry[1] += 0 if answered or held_back else 1
    groups = []
    cost: float | None = 0.0 if prices is not None else None
    unpriced = 0
    for (model, size, quality), (count, to_send) in sorted(
        counts.items(), key=lambda item: tuple(str(part) for part in item[0])
    ):
        unit = prices.price(model, size) if prices is not None else None
        group_cost = unit * to_send if unit is not None else None
        if prices is not None and unit is None:
            unpriced += to_send
        if cost is not None and group_cost is not None:
            cost += group_cost
        groups.append(
            PlanGroup(
                model=model,
                size=size,
                quality=quality,
                count=count,
                to_send=to_send,
                unit_price=unit,
                cost=group_cost,
            )
        )
    images, footprint, remote = _references([request for _, request in checked])
    skipped = sum(resumed)
    unsure = sum(held)
    return BatchPlan(
        requests=total,
        invalid=tuple(sorted(invalid)),
        groups=tuple(groups),
        reference_images=images,
        reference_bytes=footprint,
        remote_references=remote,
        resumed=skipped,
        uncertain=unsure,
        to_send=len(checked) - skipped - unsure,
        estimated_cost=round(cost, 6) if cost is not None else None,
        unpriced=unpriced,
        currency=prices.currency if prices is not None else None,
    )


async def plan_requests(
    raws: Sequence[Any],
    check: Callable[[Any], ImageRequest],
    *,
    prices: Prices | None,
    answered: Callable[[Sequence[ImageRequest]], CheckpointStates] | None = None,
) -> BatchPlan:
    """Check ``raws`` with ``check`` and build their plan on a worker thread.

    Args:
        raws: the input requests (``ImageRequest``, dicts, prompts).
        check: turns one into a checked ``ImageRequest`` or raises.
        prices: the prices, if any.
        answered: given the checked requests, which a checkpoint answers and
            which it holds back as uncertain (blocking; ``None``: no checkpoint).
    """
    checked: list[tuple[int, ImageRequest]] = []
    invalid: list[tuple[int, str]] = []
    for index, raw in enumerate(raws):
        try:
            checked.append((index, check(raw)))
        except Exception as exc:
            invalid.append((index, str(exc)))
        if index % 512 == 511:
            await anyio.lowlevel.checkpoint()

    def work() -> BatchPlan:
        requests = [request for _, request in checked]
        if answered is None:
            return build_plan(len(raws), checked, invalid, resumed=[False] * len(requests),
                              prices=prices)  # fmt: skip
        states = answered(requests)
        return build_plan(len(raws), checked, invalid, resumed=states.resumed,
                          uncertain=states.uncertain, prices=prices)  # fmt: skip

    return await anyio.to_thread.run_sync(work)


def describe_plan(plan: BatchPlan) -> list[str]:
    """The plan as lines of text, for the command line and for logs."""
    unit = f" {plan.currency}" if plan.currency else ""
    lines = [
        f"{plan.requests} requests: {plan.valid} valid, {len(plan.invalid)} invalid; "
        f"{plan.to_send} to send, {plan.resumed} answered by the checkpoint (resume skips them)"
    ]
    if plan.uncertain:
        lines.append(
            f"{plan.uncertain} uncertain: an earlier run sent them and has no result on file "
            "(they may have been billed); not sent again without --resend-uncertain"
        )
    if plan.groups:
        lines.append("by model, size and quality:")
    for group in plan.groups:
        settings = ", ".join(
            part for part in (group.size or "size auto", group.quality or "") if part
        )
        line = f"  {group.model} ({settings}): {group.count} requests, {group.to_send} to send"
        if group.unit_price is not None and group.cost is not None:
            line += f" x {group.unit_price:g}{unit} = {group.cost:.2f}{unit}"
        elif plan.estimated_cost is not None:
            line += ": no price"
        lines.append(line)
    megabytes = plan.reference_bytes / 1_000_000
    remote = (
        f", {plan.remote_references} of them URLs (size unknown)" if plan.remote_references else ""
    )
    lines.append(
        f"reference images: {plan.reference_images} distinct, {megabytes:.1f} MB local{remote}"
    )
    if plan.estimated_cost is not None:
        missing = f" ({plan.unpriced} requests have no price)" if plan.unpriced else ""
        lines.append(f"estimated cost: {plan.estimated_cost:.2f}{unit}{missing}")
    return lines


@attrs.frozen
class CheckpointStates:
    """For each request: whether a resume answers it, whether it holds it back as uncertain."""

    resumed: list[bool]
    uncertain: list[bool]


def answered_by_checkpoint(
    path: str | os.PathLike[str], requests: Sequence[ImageRequest]
) -> CheckpointStates:
    """What a resume on ``path`` would do with ``requests`` (blocking; reads the journal).

    As the engine does: an earlier success answers a request; else an earlier
    attempt without a result makes it uncertain. The journal is only read,
    not locked: a plan may look at a batch that is running.
    """
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return CheckpointStates([False] * len(requests), [False] * len(requests))
    journal = read_journal(content, Path(path))
    successes = {fp: len(records) for fp, records in journal.successes.items()}
    open_attempts = {fp: len(records) for fp, records in journal.uncertain.items()}
    resumed, uncertain = [], []
    for request in requests:
        fp = _fingerprint(request)
        answered = fp is not None and successes.get(fp, 0) > 0
        unsure = not answered and fp is not None and open_attempts.get(fp, 0) > 0
        if answered:
            successes[str(fp)] -= 1
        elif unsure:
            open_attempts[str(fp)] -= 1
        resumed.append(answered)
        uncertain.append(unsure)
    return CheckpointStates(resumed, uncertain)


async def plan_batch(
    client: BatchClient,
    requests: RequestSource,
    *,
    prices: PriceArg = None,
    checkpoint: CheckpointPath = None,
) -> BatchPlan:
    """``client.plan``: check ``requests`` with the client's rules and plan them."""
    check_source(requests)
    if isinstance(prices, (str, os.PathLike)):
        table = await anyio.to_thread.run_sync(to_prices, prices)
    else:
        table = to_prices(prices)
    raws = await materialize(requests)

    def check(raw: Any) -> ImageRequest:
        return client.check(ImageRequest.coerce(raw))

    answered = None
    if checkpoint is not None:
        journal = checkpoint

        def answered(checked: Sequence[ImageRequest]) -> CheckpointStates:
            return answered_by_checkpoint(journal, checked)

    return await plan_requests(raws, check, prices=table, answered=answered)
