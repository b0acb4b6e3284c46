"""``metadata.jsonl``: one line per saved image, in the Hugging Face ImageFolder layout.

Each line is a JSON object whose first key is ``file_name`` (relative to the
directory), followed by what made the image and what the file is::

    {"file_name": "0001-a-red-fox.png", "prompt": "a red fox", "model": "gpt-image-2",
     "size": "1K", "aspect_ratio": null, "quality": null, "reference_images": [],
     "url": "https://cdn…/a.png", "request_id": "req_1", "attempts": 1,
     "elapsed": 12.5, "created": 1700000000, "sha256": "…", "bytes": 2048,
     "width": 1024, "height": 1024}

The input's extra columns (a CSV's ``id``, ...) come between
``reference_images`` and ``url``. ``load_dataset("imagefolder",
data_dir=DIR)`` reads the directory as a data set with these columns.

Crash safety: a line is appended (one write, flushed and fsync'd on a worker
thread) only after its image file has been renamed into place, so every line
names a complete file. Opening the manifest again drops a torn last line and
lines whose file is gone, and rewrites the file atomically (a temporary file
renamed over it); closing it rewrites it once more, one line per file, in
file-name order. Several writers (``batch --shard``) each keep a file of their
own, ``metadata.shard-I-of-N.jsonl``, merged by ``merge_manifests``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .dimensions import HEAD_BYTES, image_dimensions

if TYPE_CHECKING:
    from .._models import ImageRequest, ImageResponse

__all__ = [
    "FAILURES_PREFIX",
    "MANIFEST_NAME",
    "FileFacts",
    "ManifestWriter",
    "failure_row",
    "failures_name",
    "file_facts",
    "manifest_row",
    "read_rows",
    "reference_entries",
    "shard_manifest_name",
    "write_rows",
    "extra_column",
    "rectangular",
]

#: The manifest's file name: the one ``load_dataset("imagefolder")`` reads.
MANIFEST_NAME = "metadata.jsonl"
#: Failures are kept in hidden files (data set loaders skip them) starting with this.
FAILURES_PREFIX = ".linkai-failures"
_CHUNK = 1 << 20
#: The columns every line has, in order (the input's extra columns go after ``reference_images``).
COLUMNS_BEFORE = ("file_name", "prompt", "model", "size", "aspect_ratio", "quality",
                  "reference_images")  # fmt: skip
COLUMNS_AFTER = ("url", "request_id", "attempts", "elapsed", "created", "sha256", "bytes",
                 "width", "height")  # fmt: skip
_KNOWN = frozenset(COLUMNS_BEFORE) | frozenset(COLUMNS_AFTER)


def shard_manifest_name(index: int, count: int) -> str:
    """The manifest of shard ``index`` of ``count``, as ``batch --shard I/N`` numbers it."""
    return f"metadata.shard-{index}-of-{count}.jsonl"


def failures_name(manifest_name: str) -> str:
    """The hidden failures file beside a manifest: ``.linkai-failures.shard-1-of-4.jsonl``."""
    stem = manifest_name.removeprefix("metadata").removesuffix(".jsonl")
    return f"{FAILURES_PREFIX}{stem}.jsonl"


@attrs.frozen(kw_only=True)
class FileFacts:
    """What a saved file is: its sha256, its size in bytes, its pixel size when known."""

    sha256: str
    size: int
    width: int | None
    height: int | None


def file_facts(path: str | os.PathLike[str]) -> FileFacts:
    """Hash and measure a saved image (blocking: call it on a worker thread)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            size += len(chunk)
    dimensions = image_dimensions(head)
    width, height = dimensions if dimensions is not None else (None, None)
    return FileFacts(sha256=digest.hexdigest(), size=size, width=width, height=height)


def _reference(image: object) -> dict[str, str | None]:
    """One reference image: a URL as is, anything local as its file name and sha256."""
    entry: dict[str, str | None] = {"url": None, "name": None, "sha256": None}
    if isinstance(image, str) and image[:8].lower().startswith(("http://", "https://")):
        entry["url"] = image
    elif isinstance(image, str) and image[:5].lower() == "data:":
        _, _, payload = image.partition(",")
        try:
            raw = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raw = image.encode()
        entry["sha256"] = hashlib.sha256(raw).hexdigest()
    elif isinstance(image, (str, os.PathLike)):
        entry["name"] = Path(image).name
        try:
            digest = hashlib.sha256()
            with open(image, "rb") as file:
                while chunk := file.read(_CHUNK):
                    digest.update(chunk)
            entry["sha256"] = digest.hexdigest()
        except OSError:
            pass
    elif isinstance(image, (bytes, bytearray, memoryview)):
        entry["sha256"] = hashlib.sha256(image).hexdigest()
    else:  # a file object or a PIL image: its name, when it has one
        name = getattr(image, "name", None) or getattr(image, "filename", None)
        entry["name"] = Path(name).name if isinstance(name, str) and name else None
    return entry


def reference_entries(images: Iterable[object]) -> list[dict[str, str | None]]:
    """The ``reference_images`` column (blocking for local files: call it on a worker thread).

    Each entry has the same keys, ``url``, ``name`` and ``sha256``, so the
    column has one type for data set loaders (not ``file_name``: ``datasets``
    would take a nested ``file_name`` for an image of the data set to load).
    """
    return [_reference(image) for image in images]


def manifest_row(
    *,
    file_name: str,
    request: ImageRequest | None,
    response: ImageResponse | None,
    position: int,
    facts: FileFacts,
    references: Sequence[Mapping[str, str | None]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One manifest line as a dict, ``file_name`` first.

    Args:
        file_name: the image's path relative to the manifest's directory.
        request: what was asked for (``None``: its columns are ``null``).
        response: what came back.
        position: the image's place in ``response.data``.
        facts: the saved file's hash and size.
        references: ``reference_entries(request.images)``.
        extra: the input's extra columns; see ``extra_column``.
    """
    image = response.data[position] if response is not None else None
    row: dict[str, Any] = {
        "file_name": file_name,
        "prompt": request.prompt if request is not None else None,
        "model": (request.model if request is not None else None)
        or (response.model if response is not None else None),
        "size": request.size if request is not None else None,
        "aspect_ratio": request.aspect_ratio if request is not None else None,
        "quality": request.quality if request is not None else None,
        "reference_images": [dict(entry) for entry in references],
    }
    for name, value in (extra or {}).items():
        row[extra_column(str(name))] = value
    row.update(
        url=image.url if image is not None else None,
        request_id=response.request_id if response is not None else None,
        attempts=response.attempts if response is not None else None,
        elapsed=round(response.elapsed, 3) if response is not None else None,
        created=response.created if response is not None else None,
        sha256=facts.sha256,
        bytes=facts.size,
        width=facts.width,
        height=facts.height,
    )
    return row


def extra_column(name: str) -> str:
    """The manifest column of an input's extra column ``name``.

    A name that clashes with a manifest column becomes ``input_<name>``; one
    that ``datasets`` would read as a file to load (``file_name``,
    ``*_file_name``, and the plural) says ``filename`` instead.
    """
    key = f"input_{name}" if name in COLUMNS_BEFORE or name in COLUMNS_AFTER else name
    if key.endswith(("file_name", "file_names")):
        key = key[: key.rindex("file_name")] + "filename" + key[key.rindex("file_name") + 9 :]
    return key


def rectangular(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with the same columns in the same order (missing ones ``null``).

    Data set loaders infer one schema for the file; lines whose inputs had
    different extra columns would otherwise disagree.
    """
    extras: dict[str, None] = {}
    for row in rows:
        extras.update((key, None) for key in row if key not in _KNOWN)
    order = [*COLUMNS_BEFORE, *extras, *COLUMNS_AFTER]
    return [{key: row.get(key) for key in order} for row in rows]


def failure_row(
    *, label: str, request: ImageRequest | None, error: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One line of the failures file: which request, what it asked for, and why it failed."""
    return {
        "label": label,
        "prompt": request.prompt if request is not None else None,
        "model": request.model if request is not None else None,
        "size": request.size if request is not None else None,
        "aspect_ratio": request.aspect_ratio if request is not None else None,
        "quality": request.quality if request is not None else None,
        "error": error,
        **({"input": dict(extra)} if extra else {}),
    }


def _dumps(row: Mapping[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON object lines of a JSON Lines file; torn or foreign lines skipped (blocking)."""
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    rows = []
    for line in content.split(b"\n"):
        try:
            value = json.loads(line)
        except ValueError:
            continue  # a torn last line (a crash mid-write), or a blank line
        if isinstance(value, dict):
            rows.append(value)
    return rows


def write_rows(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``rows`` atomically: a temporary file, fsync'd, renamed (blocking)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with open(temp, "wb") as file:
            for row in rows:
                file.write(_dumps(row))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _current(directory: Path, rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows by file name, the last line of a name winning, those whose file is gone dropped."""
    by_name: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row.get("file_name")
        if isinstance(name, str) and (directory / name).is_file():
            by_name[name] = row
    return by_name


class ManifestWriter:
    """The manifest of one batch run: open it, ``add`` lines as images are saved, close it.

    Use ``await ManifestWriter.open(directory, name)``; ``name`` is
    ``metadata.jsonl``, or a shard's own file (``shard_manifest_name``).
    """

    def __init__(self, directory: Path, name: str, rows: dict[str, dict[str, Any]]) -> None:
        self.directory = directory
        self.path = directory / name
        self._rows = rows
        self._lock = anyio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls, directory: str | os.PathLike[str], name: str = MANIFEST_NAME
    ) -> ManifestWriter:
        """Open the manifest ``name`` in ``directory``, keeping its lines whose files exist.

        Raises:
            OSError: the directory or the file cannot be written.
        """
        folder = Path(directory)

        def load() -> dict[str, dict[str, Any]]:
            folder.mkdir(parents=True, exist_ok=True)
            rows = _current(folder, read_rows(folder / name))
            write_rows(folder / name, rows.values())
            return rows

        return cls(folder, name, await anyio.to_thread.run_sync(load))

    def has(self, file_name: str) -> bool:
        """Whether the manifest already has a line for ``file_name``."""
        return file_name in self._rows

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The lines so far, one per file, in file-name order."""
        return [self._rows[name] for name in sorted(self._rows)]

    async def add(self, row: Mapping[str, Any]) -> None:
        """Append one line (its file must already be in place), flushed and fsync'd."""
        data = _dumps(row)

        def append() -> None:
            with open(self.path, "ab") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())

        async with self._lock:
            if self._closed:
                raise RuntimeError("the manifest is closed")
            self._rows[str(row["file_name"])] = dict(row)
            with anyio.CancelScope(shield=True):  # a line taken is a line written
                await anyio.to_thread.run_sync(append)

    async def aclose(self) -> None:
        """Rewrite the manifest compactly: one line per file, in file-name order."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(write_rows, self.path, rectangular(self.rows))
