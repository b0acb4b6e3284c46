"""One output directory's bookkeeping while a batch saves into it.

``OutputRecorder`` is shared by ``save_results`` and ``linkai-images batch``:
it gives the PNG text for each image about to be saved (provenance), adds
each saved file's line to the manifest once the file is in place, and at the
end writes the failures and the gallery. Reference images are described
(local files hashed) once per request, on a worker thread.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .gallery import GallerySummary, write_gallery
from .manifest import (
    MANIFEST_NAME,
    ManifestWriter,
    failures_name,
    file_facts,
    manifest_row,
    reference_entries,
    write_rows,
)
from .provenance import provenance_text

if TYPE_CHECKING:
    from .._models import ImageRequest, ImageResponse

__all__ = ["OutputRecorder"]

_References = list[dict[str, str | None]]


class OutputRecorder:
    """Provenance, manifest lines, failures and gallery for one output directory.

    Open it with ``await OutputRecorder.open(directory, ...)``; call
    ``text`` before saving an image, ``record`` after, and ``finish`` once.
    """

    def __init__(
        self, directory: Path, writer: ManifestWriter | None, *, provenance: bool, name: str
    ) -> None:
        self.directory = directory
        self._writer = writer
        self._provenance = provenance
        self._name = name
        self._references: dict[Hashable, _References] = {}

    @classmethod
    async def open(
        cls,
        directory: str | Path,
        *,
        manifest: bool = True,
        provenance: bool = True,
        manifest_name: str = MANIFEST_NAME,
    ) -> OutputRecorder:
        """Start recording into ``directory`` (created if missing).

        Args:
            directory: the output directory.
            manifest: keep ``metadata.jsonl`` (or ``manifest_name``), the
                failures and ``index.html``.
            provenance: give PNG text for each image.
            manifest_name: the manifest's file name (a shard has its own).
        """
        folder = Path(directory)
        writer = await ManifestWriter.open(folder, manifest_name) if manifest else None
        return cls(folder, writer, provenance=provenance, name=manifest_name)

    async def references(self, key: Hashable, request: ImageRequest | None) -> _References:
        """The ``reference_images`` entries of ``request`` (computed once per ``key``)."""
        if request is None or not request.images:
            return []
        if key not in self._references:
            entries = await anyio.to_thread.run_sync(reference_entries, request.images)
            self._references[key] = entries
        return self._references[key]

    async def text(
        self, key: Hashable, request: ImageRequest | None, response: ImageResponse, position: int
    ) -> dict[str, str] | None:
        """The PNG text for image ``position`` of ``response``, or ``None`` without provenance."""
        if not self._provenance:
            return None
        references = await self.references(key, request)
        return provenance_text(
            request=request, response=response, position=position, references=references
        )

    def has(self, path: Path) -> bool:
        """Whether the manifest already has a line for the file at ``path``."""
        return self._writer is not None and self._writer.has(self._relative(path))

    async def record(
        self,
        key: Hashable,
        path: Path,
        request: ImageRequest | None,
        response: ImageResponse,
        position: int,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Add the manifest line of a file now in place (hashed on a worker thread)."""
        if self._writer is None:
            return
        facts = await anyio.to_thread.run_sync(file_facts, path)
        row = manifest_row(
            file_name=self._relative(path),
            request=request,
            response=response,
            position=position,
            facts=facts,
            references=await self.references(key, request),
            extra=extra,
        )
        await self._writer.add(row)

    async def finish(self, failures: Sequence[Mapping[str, Any]]) -> GallerySummary | None:
        """Close the manifest, write the failures and ``index.html`` (shielded from cancellation).

        Returns:
            What the gallery shows, or ``None`` without a manifest.
        """
        if self._writer is None:
            return None
        summary = None
        with anyio.CancelScope(shield=True):
            await self._writer.aclose()
            summary = await anyio.to_thread.run_sync(self._write_out, list(failures))
        return summary  # noqa: RET504 - after the block: mypy counts a CancelScope as swallowing

    def _write_out(self, failures: list[Mapping[str, Any]]) -> GallerySummary:
        write_rows(self.directory / failures_name(self._name), failures)
        return write_gallery(self.directory)

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.directory).as_posix()
        except ValueError:
            return path.name
