"""``index.html``: a batch's images at a glance, as one self-contained page.

The page is a responsive grid of the images (the files beside it, shown
scaled), each with its prompt, model and settings, then the failures with
their reasons. It loads nothing from the network and runs no script: plain
HTML and an inline style sheet, with a Content-Security-Policy that forbids
scripts and remote resources. Every text from a prompt, a manifest or an
error is HTML-escaped, and file names become percent-encoded relative URLs,
so a prompt holding ``<script>`` shows as text.

``write_gallery(directory)`` first merges every ``metadata*.jsonl`` of the
directory (a plain run's, and one per shard of ``batch --shard``) into
``metadata.jsonl``, keeping one line per file that exists, under a lock
file so that shards finishing together do not lose each other's lines.
"""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs

from .manifest import (
    COLUMNS_AFTER,
    COLUMNS_BEFORE,
    FAILURES_PREFIX,
    MANIFEST_NAME,
    read_rows,
    rectangular,
    write_rows,
)

try:  # pragma: no cover - which branch depends on the platform
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["GALLERY_NAME", "GallerySummary", "merge_manifests", "render_gallery", "write_gallery"]

#: The gallery's file name in an output directory.
GALLERY_NAME = "index.html"
_LOCK_NAME = ".linkai-gallery.lock"
_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_STYLE = """
:root { color-scheme: light dark; --card: #fff; --line: #d8d8de; --muted: #606068; }
@media (prefers-color-scheme: dark) {
  :root { --card: #1f1f24; --line: #3a3a42; --muted: #a0a0aa; }
}
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem; font: 14px/1.4 system-ui, sans-serif; }
header h1 { margin: 0 0 .25rem; font-size: 1.3rem; overflow-wrap: anywhere; }
header p { margin: 0 0 1rem; color: var(--muted); }
.grid { display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 220px), 1fr)); }
figure { margin: 0; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; overflow: hidden; display: flex; flex-direction: column; }
figure a { display: block; background: repeating-conic-gradient(#8882 0 25%, #0000 0 50%)
  50% / 16px 16px; }
figure img { display: block; width: 100%; height: auto; aspect-ratio: 1; object-fit: contain; }
figcaption { padding: .5rem .6rem .6rem; }
.prompt { margin: 0 0 .35rem; overflow-wrap: anywhere; white-space: pre-wrap;
  max-height: 8.4em; overflow: auto; }
.meta { margin: 0; color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.failures { margin-top: 2rem; }
.failures h2 { font-size: 1.1rem; }
.failures li { margin: .4rem 0; overflow-wrap: anywhere; }
.reason { color: #c0392b; }
.empty { color: var(--muted); }
"""
_SETTINGS = ("size", "aspect_ratio", "quality")
# Columns shown in their own way; any other (the input's extra columns) is listed as name: value.
_KNOWN = frozenset(COLUMNS_BEFORE) | frozenset(COLUMNS_AFTER) | {"label", "error", "input"}


@attrs.frozen(kw_only=True)
class GallerySummary:
    """What ``write_gallery`` wrote: the page, the merged manifest, and their counts."""

    path: Path
    manifest: Path
    images: int
    failures: int


def _text(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _settings(row: Mapping[str, Any]) -> str:
    parts = [f"{_text(row.get('model') or 'model unknown')}"]
    parts += [_text(row[name]) for name in _SETTINGS if row.get(name)]
    if isinstance(row.get("width"), int) and isinstance(row.get("height"), int):
        parts.append(f"{row['width']}\u00d7{row['height']} px")
    references = row.get("reference_images")
    if isinstance(references, list) and references:
        parts.append(f"{len(references)} reference image{'s' if len(references) > 1 else ''}")
    extra = [
        f"{_text(key)}: {_text(value)}"
        for key, value in row.items()
        if key not in _KNOWN and not isinstance(value, (dict, list))
    ]
    return " \u00b7 ".join(parts + extra)


def _figure(row: Mapping[str, Any]) -> str:
    source = _text(quote(str(row["file_name"])))
    prompt = _text(row.get("prompt"))
    size = ""
    if isinstance(row.get("width"), int) and isinstance(row.get("height"), int):
        size = f' width="{row["width"]}" height="{row["height"]}"'
    return (
        f'<figure><a href="{source}"><img src="{source}" alt="{prompt}" loading="lazy"'
        f'{size}></a><figcaption><p class="prompt">{prompt}</p>'
        f'<p class="meta">{_settings(row)}</p></figcaption></figure>'
    )


def _failure(row: Mapping[str, Any]) -> str:
    label = _text(row.get("label") or "a request")
    settings = _settings(row)
    return (
        f"<li><b>{label}</b>: {_text(row.get('prompt'))} <span class=meta>({settings})</span>"
        f'<br><span class="reason">{_text(row.get("error"))}</span></li>'
    )


def render_gallery(
    rows: Sequence[Mapping[str, Any]],
    failures: Sequence[Mapping[str, Any]] = (),
    *,
    title: str = "Images",
) -> str:
    """The gallery page for manifest ``rows`` and failure rows, as HTML text.

    Args:
        rows: manifest lines (``file_name`` relative to the page).
        failures: failure lines (``label``, ``prompt``, ``error``, settings).
        title: the page's heading.
    """
    count = f"{len(rows)} image{'s' if len(rows) != 1 else ''}"
    if failures:
        count += f", {len(failures)} failed"
    figures = "\n".join(_figure(row) for row in rows if isinstance(row.get("file_name"), str))
    body = (
        f'<main class="grid">\n{figures}\n</main>'
        if figures
        else '<p class="empty">No images yet.</p>'
    )
    failed = ""
    if failures:
        items = "\n".join(_failure(row) for row in failures)
        failed = (
            f'<section class="failures"><h2>Failed ({len(failures)})</h2>\n'
            f"<ol>\n{items}\n</ol></section>"
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><header><h1>{_text(title)}</h1><p>{count}</p></header>\n"
        f"{body}\n{failed}\n</body></html>\n"
    )


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / _LOCK_NAME, "a+b") as lock:
        if fcntl is not None:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _manifests(directory: Path) -> list[Path]:
    # metadata.jsonl first, so a shard's newer line for the same file wins.
    found = sorted(directory.glob("metadata*.jsonl"))
    return sorted(found, key=lambda path: path.name != MANIFEST_NAME)


def merge_manifests(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Merge every ``metadata*.jsonl`` of ``directory`` into ``metadata.jsonl`` (blocking).

    One line per file that exists, the last line of a file name winning, in
    file-name order; written atomically.

    Returns:
        The merged lines.
    """
    folder = Path(directory)
    merged: dict[str, dict[str, Any]] = {}
    for manifest in _manifests(folder):
        for row in read_rows(manifest):
            name = row.get("file_name")
            if isinstance(name, str) and (folder / name).is_file():
                merged[name] = row
    rows = rectangular([merged[name] for name in sorted(merged)])
    write_rows(folder / MANIFEST_NAME, rows)
    return rows


def _failures(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"{FAILURES_PREFIX}*.jsonl")):
        rows += read_rows(path)
    return rows


def write_gallery(directory: str | os.PathLike[str], *, title: str | None = None) -> GallerySummary:
    """Merge the manifests of ``directory`` and write its ``index.html`` (blocking).

    Args:
        directory: a batch output directory.
        title: the page's heading; default the directory's name.

    Raises:
        FileNotFoundError: ``directory`` does not exist.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such directory")
    with _locked(folder):
        rows = merge_manifests(folder)
        failures = _failures(folder)
        page = render_gallery(rows, failures, title=title or folder.resolve().name)
        target = folder / GALLERY_NAME
        temp = folder / f".{GALLERY_NAME}.{secrets.token_hex(4)}.part"
        try:
            temp.write_text(page, encoding="utf-8")
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return GallerySummary(
        path=target, manifest=folder / MANIFEST_NAME, images=len(rows), failures=len(failures)
    )
