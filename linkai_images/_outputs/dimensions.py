"""Pixel width and height of an image file from its first bytes, without decoding it.

PNG, GIF and WebP keep their size at a fixed place in the header; JPEG keeps
it in the first start-of-frame segment, found by walking the segments.
Hand-written because the manifest needs two numbers and Pillow is an
optional extra.
"""

from __future__ import annotations

import struct

from .pngtext import png_dimensions

__all__ = ["HEAD_BYTES", "image_dimensions"]

#: Bytes of a file's start that are enough for ``image_dimensions`` (JPEG metadata can be long).
HEAD_BYTES = 1 << 20
# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(head: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(head):
        if head[offset] != 0xFF:
            return None
        marker = head[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", head, offset + 2)
        if marker in _SOF:
            if offset + 9 > len(head):
                return None
            height, width = struct.unpack_from(">HH", head, offset + 5)
            return int(width), int(height)
        offset += 2 + length
    return None


def _webp(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack_from("<HH", head, 26)
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, JPEG, GIF or WebP file, or ``None`` when unknown.

    Args:
        head: the start of the file (``HEAD_BYTES`` is plenty).
    """
    if head.startswith(b"\x89PNG"):
        return png_dimensions(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(head)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack_from("<HH", head, 6)
        return int(width), int(height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    return None
