"""The image type of some bytes, from their magic numbers.

Hand-written on purpose: the API takes four types, each recognised by a fixed
signature at the start of the file, which is four comparisons. ``filetype`` or
``puremagic`` would add a core dependency for about fifteen lines; the
standard library's ``imghdr`` was removed in Python 3.13, and ``mimetypes``
guesses from file names, not from bytes, so a ``.png`` name on JPEG bytes (or
raw bytes with no name at all) would be labelled wrongly.
"""

from __future__ import annotations

__all__ = ["ALLOWED_MIME_TYPES", "SNIFF_BYTES", "describe_head", "sniff_mime"]

#: The MIME types the API accepts for reference images, in the order errors list them.
ALLOWED_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")

#: How many leading bytes ``sniff_mime`` needs (WEBP's tag sits at offset 8-11).
SNIFF_BYTES = 12

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_GIFS = (b"GIF87a", b"GIF89a")


def sniff_mime(head: bytes) -> str | None:
    """The MIME type of an image from its first bytes, or ``None``.

    Args:
        head: the start of the file; ``SNIFF_BYTES`` bytes are enough.

    Returns:
        One of ``ALLOWED_MIME_TYPES``, or ``None`` when the bytes start like
        none of them.
    """
    if head.startswith(_PNG):
        return "image/png"
    if head.startswith(_JPEG):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in _GIFS:
        return "image/gif"
    return None


def describe_head(head: bytes) -> str:
    """A short description of unrecognised leading bytes, for error messages.

    Args:
        head: the start of the data.

    Returns:
        The first bytes as a ``bytes`` repr (at most ``SNIFF_BYTES``).
    """
    shown = head[:SNIFF_BYTES]
    return f"it starts with {shown!r}" + ("..." if len(head) > SNIFF_BYTES else "")
