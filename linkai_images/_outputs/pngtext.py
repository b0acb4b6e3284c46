"""Provenance inside PNG files: iTXt text chunks, written and read without Pillow.

A PNG is a signature followed by chunks (length, type, data, CRC-32). Text
chunks may sit anywhere between ``IHDR`` and ``IEND``; they are inserted
just before the first ``IDAT`` (readers that stop at the pixels still see
them), and every other byte of the file is copied as it came: the pixels
are never decoded or re-encoded.

iTXt holds UTF-8 text (tEXt is Latin-1 only), so any prompt fits. Files that
are not PNG pass through unchanged. ``TextInserter`` works on a stream of
chunks of any size, so a download is stamped while it is written.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncGenerator, Mapping

__all__ = [
    "PNG_SIGNATURE",
    "TextInserter",
    "add_png_text",
    "itxt_chunk",
    "png_dimensions",
    "read_png_text",
    "stamp_stream",
]

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEADER = 8  # length + type
_MAX_KEYWORD = 79


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _check_keyword(keyword: str) -> bytes:
    # PNG keywords: 1-79 printable Latin-1 characters, no leading, trailing or double spaces.
    try:
        raw = keyword.encode("latin-1")
    except UnicodeEncodeError:
        raw = b""
    printable = all(32 <= b <= 126 or 161 <= b <= 255 for b in raw)
    spaced = keyword != keyword.strip() or "  " in keyword
    if not (0 < len(raw) <= _MAX_KEYWORD) or not printable or spaced:
        raise ValueError(
            f"PNG text keyword {keyword!r} is not allowed; use 1-79 printable Latin-1 "
            "characters without leading, trailing or double spaces"
        )
    return raw


def itxt_chunk(keyword: str, text: str) -> bytes:
    """One uncompressed iTXt chunk holding ``text`` (UTF-8) under ``keyword``.

    Raises:
        ValueError: a keyword the PNG specification does not allow.
    """
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translation NUL.
    data = _check_keyword(keyword) + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return _chunk(b"iTXt", data)


def _text_chunks(entries: Mapping[str, str]) -> bytes:
    return b"".join(itxt_chunk(keyword, text) for keyword, text in entries.items())


class TextInserter:
    """Adds text chunks to a PNG arriving in pieces; ``feed`` each piece, then ``finish``.

    Bytes are held back only until the first ``IDAT`` (or ``IEND``) header
    has been seen; from then on every piece passes straight through. Data
    that does not start with the PNG signature passes through untouched.
    """

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._text = _text_chunks(entries)
        self._buffer = bytearray()
        self._offset = 0  # where the next chunk header starts in the buffer
        self._done = not self._text

    def feed(self, data: bytes) -> bytes:
        """The bytes that can be written now (possibly none)."""
        if self._done:
            return data
        self._buffer += data
        buffer = self._buffer
        if len(buffer) < len(PNG_SIGNATURE):
            return b""
        if not buffer.startswith(PNG_SIGNATURE):
            return self._release(b"")  # not a PNG: left as it is
        if self._offset == 0:
            self._offset = len(PNG_SIGNATURE)
        while len(buffer) >= self._offset + _HEADER:
            length, kind = struct.unpack_from(">I4s", buffer, self._offset)
            if kind in (b"IDAT", b"IEND"):
                return self._release(self._text)
            self._offset += _HEADER + length + 4
        return b""

    def finish(self) -> bytes:
        """What is still held back (a file that ended before its pixels is left as it was)."""
        return self._release(b"") if not self._done else b""

    def _release(self, insert: bytes) -> bytes:
        self._done = True
        head = bytes(self._buffer[: self._offset]) if insert else b""
        tail = bytes(self._buffer[self._offset :]) if insert else bytes(self._buffer)
        self._buffer = bytearray()
        return head + insert + tail


def add_png_text(data: bytes, entries: Mapping[str, str]) -> bytes:
    """``data`` with ``entries`` added as iTXt chunks, or unchanged if it is not a PNG.

    Raises:
        ValueError: a keyword the PNG specification does not allow.
    """
    inserter = TextInserter(entries)
    return inserter.feed(data) + inserter.finish()


async def stamp_stream(
    chunks: AsyncGenerator[bytes, None], entries: Mapping[str, str]
) -> AsyncGenerator[bytes, None]:
    """``chunks`` with ``entries`` added as iTXt chunks when they make up a PNG."""
    inserter = TextInserter(entries)
    try:
        async for chunk in chunks:
            out = inserter.feed(chunk)
            if out:
                yield out
        rest = inserter.finish()
        if rest:
            yield rest
    finally:
        await chunks.aclose()


def _iter_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (no PNG signature)")
    chunks = []
    offset = len(PNG_SIGNATURE)
    while offset + _HEADER <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        body = data[offset + _HEADER : offset + _HEADER + length]
        if len(body) < length:
            raise ValueError(f"truncated PNG: the {kind!r} chunk at byte {offset} is cut off")
        chunks.append((kind, body))
        offset += _HEADER + length + 4
        if kind == b"IEND":
            break
    return chunks


def read_png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (iTXt, tEXt, zTXt) as ``{keyword: text}``.

    Raises:
        ValueError: ``data`` is not a PNG, or is truncated.
    """
    texts: dict[str, str] = {}
    for kind, body in _iter_chunks(data):
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\x00")
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"zTXt":
            keyword, _, rest = body.partition(b"\x00")
            texts[keyword.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\x00")
            compressed, _method = rest[0], rest[1]
            _language, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            raw = zlib.decompress(text) if compressed else text
            texts[keyword.decode("latin-1")] = raw.decode("utf-8")
    return texts


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR, or ``None`` if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)
