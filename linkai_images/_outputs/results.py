"""``save_results``: a batch's images into a directory, with provenance, manifest and gallery.

Each image is downloaded once and written atomically; PNGs get the request's
prompt and parameters as iTXt chunks on the way (``provenance=False``: the
bytes as served). With ``manifest=True`` each saved file gets its line in
``metadata.jsonl`` as soon as it is in place, the failures are listed in a
hidden ``.linkai-failures.jsonl``, and ``index.html`` is written at the end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import DownloadError
from .._http.transport import DOWNLOAD_CONNECTIONS
from .._models import ImageRequest, ImageResponse, RequestLike
from .manifest import failure_row
from .recorder import OutputRecorder

if TYPE_CHECKING:
    from .._models import GeneratedImage

__all__ = ["save_results"]


def _requests(
    results: Sequence[object], requests: Sequence[RequestLike] | None
) -> list[ImageRequest | None]:
    given = requests if requests is not None else getattr(results, "requests", None)
    if not given:
        return [None] * len(results)
    if len(given) != len(results):
        raise ValueError(
            f"requests must align with results: {len(given)} requests for {len(results)} results"
        )
    return [ImageRequest.coerce(request) for request in given]


async def save_results(
    results: Sequence[ImageResponse | BaseException | None],
    directory: str | os.PathLike[str],
    *,
    requests: Sequence[RequestLike] | None = None,
    manifest: bool = False,
    provenance: bool = True,
    concurrency: int = DOWNLOAD_CONNECTIONS,
) -> list[list[Path] | None]:
    """Save every image of a batch's results into ``directory``, a few at a time.

    Failed entries (exceptions, ``None``) are skipped. Each image is written
    atomically; an image that fails to download is reported after the others
    have been saved, so one bad URL does not lose the rest.

    Args:
        results: the aligned list ``generate_many`` returned (or
            ``BatchError.results``). It knows its requests, so the prompts
            reach the files and the manifest.
        directory: where to put the files (created if missing).
        requests: the requests, aligned with ``results``; needed only for a
            plain list of results (``generate_many``'s list carries them).
        manifest: also write ``metadata.jsonl`` (one line per image, in the
            Hugging Face ImageFolder layout), the failures, and
            ``index.html``, a gallery of the directory.
        provenance: write the prompt, model and parameters into each PNG as
            iTXt text chunks (the pixels are untouched); ``False`` saves
            the bytes exactly as served.
        concurrency: downloads at once.

    Returns:
        For each entry, the paths written (in ``data`` order), or ``None``
        for a failed entry.

    Raises:
        DownloadError: an image could not be saved (the first such error,
            after every other image was saved).
        ValueError: ``requests`` does not align with ``results``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
    origins = _requests(results, requests)
    folder = Path(directory)
    await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
    limiter = anyio.Semaphore(concurrency)
    saved: list[list[Path] | None] = [
        [Path()] * len(r.data) if isinstance(r, ImageResponse) else None for r in results
    ]
    failures: list[tuple[int, DownloadError]] = []
    recorder = await OutputRecorder.open(folder, manifest=manifest, provenance=provenance)

    async def save_one(
        index: int, position: int, response: ImageResponse, image: GeneratedImage
    ) -> None:
        async with limiter:
            request = origins[index]
            text = await recorder.text(index, request, response, position)
            try:
                path = await image.save(folder, provenance=text)
            except DownloadError as exc:
                failures.append((index, exc))
                return
            await recorder.record(index, path, request, response, position)
        paths = saved[index]
        assert paths is not None
        paths[position] = path

    try:
        async with anyio.create_task_group() as tg:
            for index, result in enumerate(results):
                if isinstance(result, ImageResponse):
                    for position, image in enumerate(result.data):
                        tg.start_soon(save_one, index, position, result, image)
    finally:
        await recorder.finish(_failure_rows(results, origins, failures))
    if failures:
        raise failures[0][1]
    return saved


def _failure_rows(
    results: Sequence[object],
    origins: Sequence[ImageRequest | None],
    failures: Sequence[tuple[int, DownloadError]],
) -> list[dict[str, Any]]:
    rows = [
        failure_row(label=f"request {index}", request=origins[index], error=str(result))
        for index, result in enumerate(results)
        if isinstance(result, BaseException)
    ]
    rows += [
        failure_row(label=f"request {index}", request=origins[index], error=str(exc))
        for index, exc in failures
    ]
    return rows
