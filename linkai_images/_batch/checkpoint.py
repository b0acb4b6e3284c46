"""Crash-safe, resumable batches: a JSON Lines journal of intents and outcomes.

A batch run with ``checkpoint=PATH`` appends one JSON object per line to
``PATH``. Each request that is sent gets an *intent* record before its
first attempt leaves, and an *outcome* record when it settles; both carry
the same ``id`` (this run's token and the request's index)::

    {"v":1,"id":"5f3a9c1e-12","fp":"9f2c…","index":12,"intent":true,"prompt":"a fox",
     "model":"gpt-image-2"}
    {"v":1,"id":"5f3a9c1e-12","fp":"9f2c…","index":12,"ok":true,"model":"gpt-image-2",
     "images":[{"url":"https://cdn…/a.png"}],"created":1700000000,"attempts":1,"elapsed":12.5,
     "request_id":"req_1"}
    {"v":1,"id":"5f3a9c1e-13","fp":"41d0…","index":13,"ok":false,"uncertain":false,
     "error":{"type":"ServiceUnavailableError","message":"…","status_code":503,"attempts":3}}
    {"v":1,"fp":"9f2c…","index":12,"saved":[{"url":"https://cdn…/a.png","path":"0013-a-fox.png"}]}

The last kind, *saved*, is written by whoever saves the images (the
command line) once they are on disk. ``fp`` is the request's fingerprint
(``fingerprint.py``), which matches the requests of a rerun to the records.

Every record is on disk (written and fsync'd, on a worker thread) before
``write`` returns, and a request is sent only once its intent is: so after
a crash, even ``kill -9``, the journal knows every request that may have
reached the platform. Records written in the same moment share one fsync
(group commit): a writer that finds no flush running becomes the flusher,
lets the other ready tasks add their records, and writes them all at once;
the others wait for that flush. So a full pool of requests costs a few
fsyncs per round, not one per request.

A rerun with the same file answers each request whose fingerprint has a
success, in order of appearance (a prompt asked for twice gets both of its
images), and sends the requests that failed and those never sent. A request
with an intent but no outcome, or whose outcome was a failure after it was
sent (``FailureKind.UNCERTAIN``), may have been generated and billed: it is
*uncertain*, and is not sent again unless the batch says
``resend_uncertain``; the intent of such a resend names the earlier one
(``"resends": id``), which settles it.

A process killed mid-write leaves a torn last line: it is skipped when
reading, and the next record starts on a new line. While a batch runs, the
file is locked (``flock``, where the platform has it) so a second run on the
same checkpoint fails at once instead of interleaving records.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.lowlevel
import attrs

from .._exceptions import APIStatusError, CheckpointError
from .._failures import FailureKind
from .._models import GeneratedImage, ImageRequest, ImageResponse
from .fingerprint import fingerprint

try:  # pragma: no cover - which branch depends on the platform
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "Journal",
    "Uncertain",
    "failure_record",
    "fingerprint",
    "intent_record",
    "read_journal",
    "response_from_record",
    "saved_record",
    "success_record",
]

#: The ``v`` of the records written; records of other versions are ignored.
CHECKPOINT_VERSION = 1

_sync = getattr(os, "fdatasync", os.fsync)  # the data and the size; not the timestamps


@attrs.frozen
class Uncertain:
    """A request an earlier run sent without a result on file.

    Attributes:
        id: the journal id of that attempt (a resend names it).
        previous_error: the error it ended with, or ``None`` when the run
            stopped before its outcome was recorded.
    """

    id: str
    previous_error: str | None


def intent_record(
    id: str, fp: str, index: int, request: ImageRequest, *, resends: str | None = None
) -> dict[str, Any]:
    """The journal record written before a request's first attempt."""
    record: dict[str, Any] = {
        "v": CHECKPOINT_VERSION,
        "id": id,
        "fp": fp,
        "index": index,
        "intent": True,
        "prompt": request.prompt,
        "model": request.model,
    }
    if resends is not None:
        record["resends"] = resends
    return record


def success_record(id: str, fp: str, index: int, response: ImageResponse) -> dict[str, Any]:
    """The journal record of a success: the image URLs (or inline data) come first."""
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
        "id": id,
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


def failure_record(id: str, fp: str, index: int, error: BaseException) -> dict[str, Any]:
    """The journal record of a failure; ``uncertain`` when it may have been billed."""
    detail: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        detail["status_code"] = error.status_code
    attempts = getattr(error, "attempts", None)
    if isinstance(attempts, int):
        detail["attempts"] = attempts
    return {
        "v": CHECKPOINT_VERSION,
        "id": id,
        "fp": fp,
        "index": index,
        "ok": False,
        "uncertain": FailureKind.of(error) is FailureKind.UNCERTAIN,
        "error": detail,
    }


def saved_record(
    fp: str, index: int, saved: Sequence[tuple[str | None, str | os.PathLike[str]]]
) -> dict[str, Any]:
    """The journal record of a request's images saved to disk: ``(url, path)`` pairs."""
    return {
        "v": CHECKPOINT_VERSION,
        "fp": fp,
        "index": index,
        "saved": [{"url": url, "path": os.fspath(path)} for url, path in saved],
    }


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


def _valid_success(record: Mapping[str, Any]) -> bool:
    images = record.get("images")
    return (
        isinstance(images, list)
        and bool(images)
        and all(isinstance(i, dict) and (i.get("url") or i.get("b64_json")) for i in images)
    )


def _error_text(record: Mapping[str, Any]) -> str:
    error = record.get("error")
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return f"{error['type']}: {error.get('message', '')}"
    return "an error"


@attrs.define
class Journal:
    """What earlier runs left: successes and uncertain attempts, by fingerprint."""

    successes: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)
    uncertain: dict[str, list[Uncertain]] = attrs.Factory(dict)


def read_journal(content: bytes, path: Path) -> Journal:
    """Replay a journal's records in file order; bad lines are skipped."""
    successes: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    # id -> (fp, the error it ended with), for the attempts without a result so far
    open_: dict[str, tuple[str, str | None]] = {}
    for number, line in enumerate(content.split(b"\n"), 1):
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
        if not isinstance(record, dict) or record.get("v") != CHECKPOINT_VERSION:
            continue
        fp, id = record.get("fp"), record.get("id")
        if not isinstance(fp, str):
            continue
        if not isinstance(id, str):
            id = None
        if record.get("intent") is True:
            resends = record.get("resends")
            if isinstance(resends, str):
                open_.pop(resends, None)
            if id is not None:
                open_[id] = (fp, None)
        elif record.get("ok") is True:
            if _valid_success(record):
                successes[fp].append(record)
            if id is not None:
                open_.pop(id, None)
        elif record.get("ok") is False and id is not None:
            if record.get("uncertain") is True:
                open_[id] = (fp, _error_text(record))
            else:
                open_.pop(id, None)
    uncertain: dict[str, list[Uncertain]] = collections.defaultdict(list)
    for id, (fp, error) in open_.items():
        uncertain[fp].append(Uncertain(id, error))
    return Journal(dict(successes), dict(uncertain))


class _Group:
    """Records that share one write and one fsync."""

    __slots__ = ("data", "done", "error")

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.done = anyio.Event()
        self.error: OSError | None = None


class Checkpoint:
    """One open, locked journal: what earlier runs left, and the writer of this run's records.

    Open it with ``await Checkpoint.open(path)``; ``take`` / ``take_uncertain``
    hand out earlier results by fingerprint; ``await write(record)`` returns
    once the record is on disk; ``aclose`` releases the lock.
    """

    def __init__(self, path: Path, file: IO[bytes], journal: Journal, torn: bool) -> None:
        self.path = path
        self._file = file
        self._journal = journal
        self._run = secrets.token_hex(4)
        self._group = _Group()
        if torn:  # a torn last line: the next record must start on a line of its own
            self._group.data.append(b"\n")
        self._flushing: anyio.Event | None = None
        self._closed = False
        #: The first error writing the file; after it, every write fails.
        self.write_error: OSError | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Open (or create) the journal at ``path``, lock it, and read earlier results.

        Raises:
            CheckpointError: another run holds the checkpoint.
            OSError: the file cannot be opened.
        """
        target = Path(path)
        file, content = await anyio.to_thread.run_sync(_open_locked, target)
        try:
            journal = read_journal(content, target)
        except BaseException:
            await anyio.to_thread.run_sync(_unlock_and_close, file)
            raise
        return cls(target, file, journal, torn=bool(content) and not content.endswith(b"\n"))

    # -- what earlier runs left ----------------------------------------------

    @property
    def recorded(self) -> int:
        """Successes read from earlier runs and not yet handed out."""
        return sum(len(records) for records in self._journal.successes.values())

    @property
    def uncertain(self) -> int:
        """Uncertain attempts of earlier runs not yet handed out."""
        return sum(len(attempts) for attempts in self._journal.uncertain.values())

    def take(self, fp: str) -> Mapping[str, Any] | None:
        """The next unused earlier success with fingerprint ``fp``, if any."""
        records = self._journal.successes.get(fp)
        return records.pop(0) if records else None

    def take_uncertain(self, fp: str) -> Uncertain | None:
        """The next unused uncertain attempt of an earlier run with fingerprint ``fp``, if any."""
        attempts = self._journal.uncertain.get(fp)
        return attempts.pop(0) if attempts else None

    def new_id(self, index: int) -> str:
        """The journal id of this run's attempt at the request at ``index``."""
        return f"{self._run}-{index}"

    # -- writing ---------------------------------------------------------------

    async def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record``; return once it is on disk (written and fsync'd).

        Raises:
            CheckpointError: the file could not be written (now or before),
                or the checkpoint is closed.
        """
        if self._closed:
            raise CheckpointError(f"checkpoint {str(self.path)!r} is closed")
        if self.write_error is not None:
            raise self._failed(self.write_error)
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        group = self._group
        group.data.append(line.encode() + b"\n")
        while not group.done.is_set():
            if self._flushing is None:
                await self._flush()
            else:
                await self._flushing.wait()
        if group.error is not None:
            raise self._failed(group.error)

    def _failed(self, error: OSError) -> CheckpointError:
        failure = CheckpointError(f"checkpoint {str(self.path)!r} could not be written: {error}")
        failure.__cause__ = error
        return failure

    async def _flush(self) -> None:
        """Write the current group: one write and one fsync, whatever cancels the caller."""
        flushing = self._flushing = anyio.Event()
        try:
            # Let the tasks already ready to run add their records first (same loop tick).
            await anyio.lowlevel.cancel_shielded_checkpoint()
            group, self._group = self._group, _Group()
            if self.write_error is not None:
                group.error = self.write_error
            else:
                try:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._write_sync, b"".join(group.data))
                except OSError as exc:
                    group.error = self.write_error = exc
            group.done.set()
        finally:
            self._flushing = None
            flushing.set()

    def _write_sync(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        _sync(self._file.fileno())

    # -- closing ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Write the records still waiting, release the lock and close the file.

        Shielded from cancellation: a cancelled batch still journals every
        record it wrote before the cancellation.
        """
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            while self._flushing is not None:
                await self._flushing.wait()
            if self._group.data:
                await self._flush()
            self._closed = True
            await anyio.to_thread.run_sync(_unlock_and_close, self._file)
        if self.write_error is not None:
            warnings.warn(
                f"checkpoint {str(self.path)!r} could not be written ({self.write_error}); "
                "no request was sent after that, and a rerun may not find every result of "
                "this run",
                RuntimeWarning,
                stacklevel=2,
            )

    def close_now(self) -> None:
        """Close without the event loop (for a batch dropped by the garbage collector)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._group.data and self.write_error is None:
                self._write_sync(b"".join(self._group.data))
        except OSError:  # pragma: no cover - nothing left to report it to
            pass
        finally:
            self._group.data.clear()
            _unlock_and_close(self._file)


def _open_locked(path: Path) -> tuple[IO[bytes], bytes]:
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
        return file, file.read()
    except BaseException:
        file.close()
        raise


def _unlock_and_close(file: IO[bytes]) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    finally:
        file.close()
