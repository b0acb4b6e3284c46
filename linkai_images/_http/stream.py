"""Request bodies as httpx streams: one bytes object, or pieces written one after another.

A generation body with reference images is a few pieces (``_inputs/body.py``):
the JSON text around the images, and each image's encoded bytes, shared by
every request that uses the image. ``PiecesStream`` hands them to the
transport without joining them:

- on the pool (trio, or asyncio without aiohttp) as the pieces themselves:
  ``h1.py`` writes the small ones with the request head and the big ones in
  ``memoryview`` slices of ``WRITE_SLICE`` bytes, a few per turn of the
  event loop (``turns.py``), so the socket applies back-pressure between
  slices;
- on aiohttp as a payload writing the same slices (``aio.py``).

``Content-Length`` is always the sum of the pieces: no chunked upload, which
some proxies refuse. A request keeps its pieces, so a retry sends them again
without building anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import cast

import httpx

__all__ = ["WRITE_SLICE", "BytesStream", "PiecesStream", "StreamedRequest"]

#: Bytes handed to the socket at a time when a body streams from its pieces.
WRITE_SLICE = 256 * 1024


class _OneChunk:
    """An async iterator over one bytes body that is not an async generator."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        if self._body is None:
            raise StopAsyncIteration
        body, self._body = self._body, None
        return body


class BytesStream(httpx.ByteStream):
    """httpx's in-memory body, minus its async generator.

    ``ByteStream.__aiter__`` is an async generator; when a request is cancelled
    mid-send on trio it is left unfinished and garbage-collected with a
    ``ResourceWarning`` (encode/httpx#3686). A plain iterator has nothing to finalize.
    """

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._body)


class _Slices:
    """The pieces as ``memoryview`` slices of at most ``WRITE_SLICE`` bytes (no generator)."""

    __slots__ = ("_offset", "_pieces", "_view")

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._pieces = iter(pieces)
        self._view = memoryview(b"")
        self._offset = 0

    def __aiter__(self) -> _Slices:
        return self

    async def __anext__(self) -> bytes:
        while self._offset >= len(self._view):
            piece = next(self._pieces, None)
            if piece is None:
                raise StopAsyncIteration
            self._view, self._offset = memoryview(piece), 0
        start = self._offset
        self._offset = start + WRITE_SLICE
        # A memoryview, not a copy: the pool writes it as it is, and
        # bytes-like is all the socket layers below need.
        return cast(bytes, self._view[start : start + WRITE_SLICE])


class PiecesStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body made of ``pieces``, sent one after another, never joined.

    Args:
        pieces: the body's bytes, in order (shared with other requests; never
            changed).
    """

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = tuple(pieces)
        self.size = sum(len(piece) for piece in self.pieces)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.pieces)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Slices(self.pieces)


class StreamedRequest(httpx.Request):
    """An ``httpx.Request`` whose ``content`` is joined from its stream when first read.

    The transports send the stream; nothing joins a body of shared pieces
    unless someone asks for ``request.content`` (an error handler, say).
    """

    @property
    def content(self) -> bytes:
        """The body's bytes (joined on first access)."""
        if not hasattr(self, "_content"):
            self.read()
        return self._content
