"""Resumable batches: a JSON Lines journal of settled requests, matched by fingerprint.

Every settled request of a batch run with ``checkpoint=PATH`` is appended to
``PATH`` as one JSON object per line, and flushed and fsync'd (on a worker
thread, never on the event loop) as the batch goes::

    {"v": 1, "fp": "9f2c…", "index": 0, "ok": true, "model": "gpt-image-2",
     "images": [{"url": "https://cdn…/a.png"}], "created": 1700000000,
     "attempts": 1, "elapsed": 12.5, "request_id": "req_1"}
    {"v": 1, "fp": "41d0…", "index": 1, "ok": false,
     "error": {"type": "ServiceUnavailableError", "message": "…", "status_code": 503}}

``fp`` is the request's fingerprint: the sha256 of the canonical JSON of its
checked fields (model filled in, pixel sizes in tier form), reference images
taken by their *content* (the sha256 of a file's or a buffer's bytes; URLs
and data URIs by their text). A rerun with the same file answers each
request whose fingerprint has a success from the journal, in order of
appearance (so a prompt asked for twice gets both of its earlier images),
and sends the others: failures are retried. The input may be reordered.

A process killed mid-write leaves a torn last line: it is skipped when
reading, and the next record starts on a new line. While a batch runs, the
file is locked (``flock``, where the platform has it) so a second run on the
same checkpoint fails at once instead of interleaving records.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc

from .._exceptions import APIStatusError, CheckpointError
from .._models import GeneratedImage, ImageRequest, ImageResponse

try:  # pragma: no cover - which branch depends on the platform
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "fingerprint", "response_from_record"]

#: The ``v`` of the records written; records of other versions are ignored.
CHECKPOINT_VERSION = 1

_CHUNK = 1 << 20
_URL_PREFIXES = ("http://", "https://", "data:")


class _Unfingerprintable(Exception):
    """A reference image that cannot be read twice (a one-shot stream)."""


def _sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_text_image(image: object) -> bool:
    return isinstance(image, str) and image[:8].lower().startswith(_URL_PREFIXES)


def _image_key(image: object) -> str:
    """A stable key for one reference image; may read files (call it off the event loop)."""
    if isinstance(image, str) and _is_text_image(image):
        return "text:" + hashlib.sha256(image.encode()).hexdigest()
    if isinstance(image, (str, os.PathLike)):
        try:
            return "sha256:" + _sha256_file(image)
        except OSError:
            return "path:" + os.fsdecode(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(image).hexdigest()
    if hasattr(image, "tobytes") and hasattr(image, "mode") and hasattr(image, "size"):
        pil: Any = image  # a PIL image: its pixels, mode and size
        pixels = hashlib.sha256(pil.tobytes()).hexdigest()
        return f"pil:{pil.mode}:{pil.size[0]}x{pil.size[1]}:{pixels}"
    read = getattr(image, "read", None)
    seekable = getattr(image, "seekable", None)
    if callable(read) and callable(seekable) and seekable():
        stream: Any = image
        position = stream.tell()
        digest = hashlib.sha256()
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        finally:
            stream.seek(position)
        return "sha256:" + digest.hexdigest()
    raise _Unfingerprintable(type(image).__name__)


def _fingerprint(request: ImageRequest) -> str | None:
    try:
        images = [_image_key(image) for image in request.images]
    except _Unfingerprintable:
        return None
    fields = {
        "model": request.model,
        "prompt": request.prompt,
        "images": images,
        "size": request.size,
        "aspect_ratio": request.aspect_ratio,
        "quality": request.quality,
        "response_format": request.response_format,
        "extra_body": dict(request.extra_body) if request.extra_body is not None else None,
    }
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def fingerprint(request: ImageRequest) -> str | None:
    """The fingerprint of a checked request, or ``None`` when it has none.

    Requests with local reference images are hashed on a worker thread (the
    files are read). A reference image given as a one-shot stream (a file
    object that cannot seek back) has no stable fingerprint: such a request
    is sent every run and not journaled.
    """
    if all(_is_text_image(image) for image in request.images):
        return _fingerprint(request)
    return await anyio.to_thread.run_sync(_fingerprint, request)


def success_record(fp: str, index: int, response: ImageResponse) -> dict[str, Any]:
    """The journal record of a success."""
    images = []
    for image in response.data:
        entry = {
            "url": image.url,
            "b64_json": image.b64_json,
            "revised_prompt": image.revised_prompt,
        }
        images.append({key: value for key, value in entry.items() if value is not None})
    return {
        "v": CHECKPOINT_VERSION,
        "fp": fp,
        "index": index,
        "ok": True,
        "model": response.model,
        "images": images,
        "created": response.created,
        "attempts": response.attempts,
        "elapsed": round(response.elapsed, 3),
        "request_id": response.request_id,
    }


def failure_record(fp: str, index: int, error: BaseException) -> dict[str, Any]:
    """The journal record of a failure (kept for the record; failures are retried)."""
    detail: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        detail["status_code"] = error.status_code
    attempts = getattr(error, "attempts", None)
    if isinstance(attempts, int):
        detail["attempts"] = attempts
    return {"v": CHECKPOINT_VERSION, "fp": fp, "index": index, "ok": False, "error": detail}


def response_from_record(record: Mapping[str, Any], store: Any = None) -> ImageResponse:
    """Rebuild the ``ImageResponse`` of a success record.

    Args:
        record: a record with ``"ok": true``.
        store: the client's downloader, so the images can be read and saved.
    """
    images = tuple(
        GeneratedImage(
            url=image.get("url"),
            b64_json=image.get("b64_json"),
            revised_prompt=image.get("revised_prompt"),
            store=store,
        )
        for image in record["images"]
    )
    return ImageResponse(
        data=images,
        created=record.get("created"),
        model=record.get("model"),
        attempts=record.get("attempts", 1),
        elapsed=record.get("elapsed", 0.0),
        request_id=record.get("request_id"),
    )


def _valid_success(record: object) -> bool:
    if not isinstance(record, dict) or record.get("v") != CHECKPOINT_VERSION:
        return False
    if record.get("ok") is not True or not isinstance(record.get("fp"), str):
        return False
    images = record.get("images")
    return (
        isinstance(images, list)
        and bool(images)
        and all(isinstance(i, dict) and (i.get("url") or i.get("b64_json")) for i in images)
    )


def _read_successes(content: bytes, path: Path) -> dict[str, list[Any]]:
    """The success records of a journal by fingerprint, in file order; bad lines skipped."""
    successes: dict[str, list[Any]] = collections.defaultdict(list)
    lines = content.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            # A torn record (a crash mid-write) is expected; anything else is worth a word.
            if not line.startswith(b"{"):
                warnings.warn(
                    f"checkpoint {str(path)!r}: line {number} is not JSON; skipped",
                    RuntimeWarning,
                    stacklevel=4,
                )
            continue
        if _valid_success(record):
            successes[record["fp"]].append(record)
    return dict(successes)


class Checkpoint:
    """One open, locked journal: what earlier runs got, and the writer of this run's records.

    Open it with ``await Checkpoint.open(path)``; queue records with
    ``add`` (never blocks); ``run_writer`` (a task) writes them in batches on
    a worker thread; ``aclose`` writes what is left and releases the lock.
    """

    def __init__(self, path: Path, file: IO[bytes], successes: dict[str, list[Any]]) -> None:
        self.path = path
        self._file = file
        self._successes = successes
        self._pending: list[bytes] = []
        self._wakeup = anyio.Event()
        self._finishing = False
        self._closed = False
        self.write_error: OSError | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Open (or create) the journal at ``path``, lock it, and read earlier results.

        Raises:
            CheckpointError: another run holds the checkpoint.
            OSError: the file cannot be opened.
        """
        return await anyio.to_thread.run_sync(cls._open_sync, Path(path))

    @classmethod
    def _open_sync(cls, path: Path) -> Checkpoint:
        file = open(path, "a+b")  # noqa: SIM115 - held open for the batch, closed in aclose
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise CheckpointError(
                        f"checkpoint {str(path)!r} is in use by another running batch; "
                        "wait for it to finish or use another checkpoint file"
                    ) from None
            file.seek(0)
            content = file.read()
        except BaseException:
            file.close()
            raise
        checkpoint = cls(path, file, _read_successes(content, path))
        if content and not content.endswith(b"\n"):
            # A torn last line: the next record must start on a line of its own.
            checkpoint._pending.append(b"\n")
        return checkpoint

    @property
    def recorded(self) -> int:
        """Successes read from earlier runs and not yet handed out."""
        return sum(len(records) for records in self._successes.values())

    def take(self, fp: str) -> Mapping[str, Any] | None:
        """The next unused earlier success with fingerprint ``fp``, if any."""
        records = self._successes.get(fp)
        if not records:
            return None
        return records.pop(0)  # type: ignore[no-any-return]

    def add(self, record: Mapping[str, Any]) -> None:
        """Queue one record for writing."""
        if self._closed:
            return
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        self._pending.append(line.encode() + b"\n")
        self._wakeup.set()

    def finish(self) -> None:
        """Tell the writer to write what is queued and stop."""
        self._finishing = True
        self._wakeup.set()

    async def run_writer(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Write queued records until ``finish``; records are batched per thread hop.

        Start it with ``await tg.start(checkpoint.run_writer)``; it can be run
        again after it returned.
        """
        self._finishing = False
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await self._flush()
            if self._finishing and not self._pending:
                return

    async def _flush(self) -> None:
        if not self._pending or self.write_error is not None:
            self._pending.clear()
            return
        batch, self._pending = self._pending, []
        try:
            # Records taken off the queue are written even if the batch is being cancelled.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._write_sync, b"".join(batch))
        except OSError as exc:
            self.write_error = exc

    def _write_sync(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    async def aclose(self) -> None:
        """Write the records still queued, release the lock and close the file.

        Shielded from cancellation: a cancelled batch still journals every
        request that settled before the cancellation.
        """
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            await self._flush()
            self._closed = True
            await anyio.to_thread.run_sync(self._close_sync)
        if self.write_error is not None:
            warnings.warn(
                f"checkpoint {str(self.path)!r} could not be written ({self.write_error}); "
                "this run's results are returned but a rerun will not find them",
                RuntimeWarning,
                stacklevel=2,
            )

    def close_now(self) -> None:
        """Close without the event loop (for a batch dropped by the garbage collector)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending and self.write_error is None:
                self._write_sync(b"".join(self._pending))
        except OSError:  # pragma: no cover - nothing left to report it to
            pass
        finally:
            self._pending.clear()
            self._close_sync()

    def _close_sync(self) -> None:
        try:
            if fcntl is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
