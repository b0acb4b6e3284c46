"""Real PNG bytes without Pillow: a solid colour image, encoded with zlib and struct.

The fake CDN serves these. They are valid PNG files (signature, IHDR, IDAT,
IEND, correct CRCs) that any decoder opens, and small: one colour compresses
to almost nothing.
"""

from __future__ import annotations

import base64
import functools
import struct
import zlib

__all__ = ["PNG_SIGNATURE", "make_png", "make_png_b64", "png_size"]

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_MAX_SIDE = 1 << 16


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@functools.lru_cache(maxsize=256)
def make_png(width: int, height: int, rgb: tuple[int, int, int] = (0x33, 0x66, 0x99)) -> bytes:
    """A ``width`` x ``height`` PNG filled with one colour (8-bit RGB, no alpha).

    The result is cached per size and colour, so serving the same image again
    costs nothing.

    Args:
        width: pixels, 1 to 65535.
        height: pixels, 1 to 65535.
        rgb: the fill colour, three ints 0-255.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: a side or a colour component out of range.
    """
    if not (0 < width < _MAX_SIDE and 0 < height < _MAX_SIDE):
        raise ValueError(f"PNG size {width}x{height} is out of range 1-{_MAX_SIDE - 1}")
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"colour {rgb!r} is not three ints 0-255")
    # Each scanline is filter type 0 (None) followed by the raw pixels.
    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(row * height, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@functools.lru_cache(maxsize=256)
def make_png_b64(width: int, height: int, rgb: tuple[int, int, int]) -> str:
    """:func:`make_png` as standard base64 text (for ``b64_json`` answers), cached."""
    return base64.b64encode(make_png(width, height, rgb)).decode("ascii")


def png_size(data: bytes) -> tuple[int, int]:
    """The ``(width, height)`` recorded in a PNG file's header.

    Args:
        data: the file's bytes (only the first 24 are read).

    Returns:
        Width and height in pixels.

    Raises:
        ValueError: ``data`` does not start like a PNG file.
    """
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
