"""Notebook display: responses and batch results as an HTML grid of thumbnails.

Jupyter calls ``_repr_html_``; nothing here runs outside a notebook unless
asked. Images are shown from their CDN URL (the browser fetches them, with no
credential) or inline from ``b64_json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

# Structural views of ``_models``' classes: the data layer imports this module
# to render itself, so this module must not import it back.


class _Image(Protocol):
    @property
    def url(self) -> str | None: ...
    @property
    def b64_json(self) -> str | None: ...


class _Response(Protocol):
    @property
    def data(self) -> Sequence[_Image]: ...
    @property
    def model(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def elapsed(self) -> float: ...


__all__ = ["THUMBNAIL_PX", "response_html", "results_html"]

#: The thumbnail box, in CSS pixels.
THUMBNAIL_PX = 160
_GRID = (
    "display:grid;grid-template-columns:repeat(auto-fill,minmax({px}px,1fr));"
    "gap:8px;align-items:start"
)
_CELL = "margin:0;font:12px sans-serif;color:#555;overflow-wrap:anywhere"
_IMG = "max-width:100%;max-height:{px}px;border-radius:4px;display:block"
_MAX_CAPTION = 80


def _source(image: _Image) -> str | None:
    if image.b64_json:
        return f"data:image/png;base64,{image.b64_json}"
    return image.url


def _caption(text: str) -> str:
    import html  # only when a notebook renders: html.entities costs every import ~1 ms

    short = text if len(text) <= _MAX_CAPTION else text[: _MAX_CAPTION - 1] + "…"
    return html.escape(short)


def _figure(image: _Image, caption: str) -> str:
    import html

    src = _source(image)
    link = html.escape(image.url or "", quote=True)
    picture = (
        f'<img src="{html.escape(src, quote=True)}" loading="lazy" '
        f'style="{_IMG.format(px=THUMBNAIL_PX)}">'
        if src
        else "<em>no image</em>"
    )
    if link:
        picture = f'<a href="{link}" target="_blank" rel="noopener">{picture}</a>'
    return f'<figure style="{_CELL}">{picture}<figcaption>{caption}</figcaption></figure>'


def _grid(cells: Iterable[str]) -> str:
    return f'<div style="{_GRID.format(px=THUMBNAIL_PX)}">{"".join(cells)}</div>'


def response_html(response: _Response) -> str:
    """One response: its images in a grid, captioned with model, attempts and time."""
    meta = _caption(
        f"{response.model or 'image'} · {response.attempts} attempt(s) · {response.elapsed:.1f}s"
    )
    return _grid(_figure(image, meta) for image in response.data)


def results_html(results: Sequence[object], response_type: type[_Response]) -> str:
    """A batch's aligned results: each image captioned with its index, failures in red.

    ``response_type`` is the class whose instances are results (``ImageResponse``).
    """
    cells: list[str] = []
    for index, result in enumerate(results):
        if isinstance(result, response_type):
            cells.extend(_figure(image, f"#{index}") for image in result.data)
        elif isinstance(result, BaseException):
            cells.append(
                f'<figure style="{_CELL};color:#b00">#{index} '
                f"{_caption(f'{type(result).__name__}: {result}')}</figure>"
            )
    ok = sum(isinstance(r, response_type) for r in results)
    summary = f"<p style='font:12px sans-serif'>{ok} of {len(results)} succeeded</p>"
    return summary + _grid(cells)
