"""Reading a batch file for ``linkai-images batch``: JSON Lines or CSV in, checked jobs out.

JSON Lines (``.jsonl``, ``.ndjson``): one request per line, a JSON object of
request fields or a bare JSON string (the prompt); blank lines are skipped.
CSV (``.csv``): a header row naming the columns, one request per row, empty
cells left out, ``images`` as ``;``-separated paths or URLs.

Only ``prompt`` is required. Keys and columns that are not request fields
(an ``id``, a ``category``) are the line's metadata: kept with its job
(``Job.metadata``) for the outputs, never sent.

Every line is parsed and checked (catalog rules, that reference files
exist) before anything is sent, and every bad line is reported with its
line number. Relative reference paths resolve against the batch file's
directory, so a file and its images move together.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import RequestValidationError
from .._inputs.body import check_request
from .._models import ImageRequest
from .run import Job

__all__ = ["FIELDS", "BatchFileError", "read_batch_file"]

#: The request fields a batch file may set; other keys and columns are metadata.
FIELDS = ("prompt", "model", "images", "size", "aspect_ratio", "quality")
#: Also request fields in JSON Lines, where values need not be text.
_JSON_FIELDS = (*FIELDS, "response_format", "extra_body")
#: Bad lines named in the error; the rest are counted.
_MAX_LISTED = 5
_REMOTE = ("http://", "https://", "data:")


class BatchFileError(Exception):
    """The batch file cannot be used; nothing was sent."""


def read_batch_file(
    path: Path, *, default_model: str | None = None, bad_lines: list[str] | None = None
) -> list[Job]:
    """The checked jobs of a batch file, numbered by their line in it.

    Args:
        path: a ``.jsonl`` / ``.ndjson`` or ``.csv`` file.
        default_model: the model of lines that name none (``--model``).
        bad_lines: if given, bad lines are appended to it (``line 7: ...``)
            instead of raising (``batch --dry-run`` lists them).

    Raises:
        BatchFileError: an unknown format, an empty file, or bad lines (all
            of them, each with its line number).
        OSError: the file cannot be read.
    """
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv"):
        raise BatchFileError(
            f"{path}: unknown batch file type {suffix or '(no extension)'!r}; "
            "use .jsonl (one JSON object or string per line) or .csv (a header row)"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = _csv_rows(text) if suffix == ".csv" else _jsonl_rows(text)
    jobs: list[Job] = []
    problems: list[str] = []
    for number, row in rows:
        if isinstance(row, str):
            problems.append(f"line {number}: {row}")
            continue
        names = _JSON_FIELDS if suffix != ".csv" else FIELDS
        metadata = {key: value for key, value in row.items() if key not in names}
        fields = {key: value for key, value in row.items() if key in names}
        try:
            request = _request(fields, path.parent, default_model)
            jobs.append(
                Job(number=number, request=request, label=f"line {number}", metadata=metadata)
            )
        except (RequestValidationError, TypeError) as exc:
            problems.append(f"line {number}: {exc}")
    if problems and bad_lines is not None:
        bad_lines.extend(problems)
    elif problems:
        shown = " | ".join(problems[:_MAX_LISTED])
        more = f" | and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        count = f"{len(problems)} bad line{'s' if len(problems) > 1 else ''}"
        raise BatchFileError(f"{path}: {count}, nothing was sent: {shown}{more}")
    if not jobs and not problems:
        raise BatchFileError(f"{path}: no requests in the file")
    return jobs


def _jsonl_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """``(line number, fields)``, or ``(line number, problem)`` for a bad line."""
    # Not splitlines(): it also splits on U+2028 and friends, which JSON strings may hold.
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            reason = (
                f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
            )
            yield number, f"not JSON ({reason})"
            continue
        if isinstance(value, str):
            yield number, {"prompt": value}
        elif isinstance(value, dict):
            yield number, value
        else:
            yield (
                number,
                f"expected a JSON object or a string (the prompt), not {_json_type(value)}",
            )


def _json_type(value: object) -> str:
    names = {list: "an array", int: "a number", float: "a number", bool: "true/false"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _csv_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, f"not CSV ({exc})"
        return
    columns = [name.strip() for name in header]
    if "prompt" not in columns:
        yield (
            1,
            (
                f"the header row has no 'prompt' column (it has {', '.join(map(repr, columns))}); "
                f"'prompt' is required, {', '.join(FIELDS[1:])} are optional, "
                "any other column is kept as metadata"
            ),
        )
        return
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        yield 1, f"the header row repeats {', '.join(map(repr, repeated))}"
        return
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"not CSV ({exc})"
            return
        number, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(columns):
            yield number, f"{len(cells)} values for {len(columns)} columns"
            continue
        row: dict[str, Any] = {}
        for name, cell in zip(columns, cells, strict=False):  # a short row: empty cells
            cell = cell.strip()
            if cell:
                row[name] = (
                    [part.strip() for part in cell.split(";") if part.strip()]
                    if (name == "images")
                    else cell
                )
        yield number, row


def _resolve_images(images: tuple[object, ...], base: Path) -> list[str | Path]:
    resolved: list[str | Path] = []
    for item in images:
        if not isinstance(item, str):
            raise RequestValidationError("images must be a path or URL, or a list of them")
        if item[:8].lower().startswith(_REMOTE) or "://" in item:
            resolved.append(item)  # a URL or data URI, checked by the SDK
        else:
            local = Path(item).expanduser()
            resolved.append(local if local.is_absolute() else base / local)
    return resolved


def _request(fields: Mapping[str, Any], base: Path, default_model: str | None) -> ImageRequest:
    if "prompt" not in fields:
        raise RequestValidationError("no 'prompt': every line needs the prompt to draw")
    request = ImageRequest.coerce(fields)
    if request.model is None and default_model is None:
        raise RequestValidationError('no model: add a "model" field or pass --model')
    if request.images:
        request = attrs.evolve(request, images=_resolve_images(request.images, base))
    return check_request(request, default_model)
