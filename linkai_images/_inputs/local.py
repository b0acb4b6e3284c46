"""Local image data to a data URI: the blocking jobs of ``encode_image_inputs``.

Each function here reads, saves or encodes, so it runs in a worker thread,
never on the event loop. ``who`` is how error messages name the item
(``images[2]: file 'cat.png'``); every failure is a ``RequestValidationError``
chained from its cause.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from .._exceptions import RequestValidationError
from .._models import BinaryReader
from .b64 import b64encode_sliced
from .sniff import SNIFF_BYTES, describe_head, sniff_mime

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "ALLOWED_TYPES",
    "encode_data",
    "encode_file",
    "encode_path",
    "encode_pil",
    "not_an_image",
    "reason",
    "too_big",
]

#: The image types the API takes, as error messages list them.
ALLOWED_TYPES = "PNG, JPEG, WEBP or GIF"

_PIL_FORMATS = frozenset(("PNG", "JPEG", "WEBP", "GIF"))
_PNG_MODES = frozenset(("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"))


def too_big(who: str, size: int | str, max_bytes: int) -> RequestValidationError:
    """The error for an image over the size cap.

    Args:
        who: the item, as messages name it.
        size: its size in bytes, or a description when unknown.
        max_bytes: the cap.

    Returns:
        The error, to raise.
    """
    shown = f"{size:,} bytes" if isinstance(size, int) else size
    mib = f" ({max_bytes / 2**20:.4g} MiB)" if max_bytes >= 2**20 else ""
    return RequestValidationError(
        f"{who} is {shown}, over the cap of {max_bytes:,} bytes{mib} per image; "
        "shrink it, or raise max_image_bytes"
    )


def reason(exc: BaseException) -> str:
    """Why an operation failed, short: an ``OSError``'s text without the file name.

    Args:
        exc: the exception.

    Returns:
        At most 200 characters; the caller's message names the item already.
    """
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def not_an_image(who: str, head: bytes) -> RequestValidationError:
    """The error for data whose leading bytes are none of the allowed types.

    Args:
        who: the item, as messages name it.
        head: the data's first bytes.

    Returns:
        The error, to raise.
    """
    return RequestValidationError(f"{who} is not a {ALLOWED_TYPES} image ({describe_head(head)})")


def encode_data(who: str, data: bytes | memoryview, max_bytes: int) -> str:
    """``data:<mime>;base64,...`` for image bytes, the type sniffed from them.

    Args:
        who: the item, as messages name it.
        data: the image's bytes.
        max_bytes: the size cap.

    Returns:
        The data URI.

    Raises:
        RequestValidationError: empty, over the cap, or not an allowed type.
    """
    if len(data) == 0:
        raise RequestValidationError(f"{who} is empty")
    if len(data) > max_bytes:
        raise too_big(who, len(data), max_bytes)
    head = bytes(data[: SNIFF_BYTES + 1])
    mime = sniff_mime(head)
    if mime is None:
        raise not_an_image(who, head)
    return b64encode_sliced(data, prefix=f"data:{mime};base64,")


def encode_path(who: str, path: str | bytes, max_bytes: int) -> str:
    """Read a file (never more than the cap) and encode it.

    Args:
        who: the item, as messages name it.
        path: the file.
        max_bytes: the size cap.

    Returns:
        The data URI.

    Raises:
        RequestValidationError: the file cannot be read, or ``encode_data``
            refuses its content.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise too_big(who, os.fstat(file.fileno()).st_size, max_bytes)
    except OSError as exc:
        raise RequestValidationError(f"{who} cannot be read: {reason(exc)}") from exc
    return encode_data(who, data, max_bytes)


def encode_file(who: str, file: BinaryReader, max_bytes: int) -> str:
    """Read a binary file object from its current position (never more than the cap).

    Args:
        who: the item, as messages name it.
        file: the file object.
        max_bytes: the size cap.

    Returns:
        The data URI.

    Raises:
        RequestValidationError: reading failed or returned text, or
            ``encode_data`` refuses the content.
    """
    chunks: list[bytes] = []
    total = 0
    # read(n) may return less than n before the end (raw files, sockets): loop until b"".
    while total <= max_bytes:
        try:
            chunk: object = file.read(max_bytes + 1 - total)
        except (OSError, ValueError) as exc:
            raise RequestValidationError(f"{who} cannot be read: {reason(exc)}") from exc
        if isinstance(chunk, str):
            raise RequestValidationError(f"{who} returned text; open it in binary mode ('rb')")
        if chunk is None:
            raise RequestValidationError(f"{who} is non-blocking and had no data ready")
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise RequestValidationError(
                f"{who}: read() returned {type(chunk).__name__}, not bytes"
            )
        if not chunk:
            break
        chunks.append(bytes(chunk))
        total += len(chunks[-1])
    if total > max_bytes:
        raise too_big(who, f"more than {max_bytes:,} bytes", max_bytes)
    return encode_data(who, chunks[0] if len(chunks) == 1 else b"".join(chunks), max_bytes)


def encode_pil(who: str, image: PIL.Image.Image, max_bytes: int) -> str:
    """Save a PIL image in its own format when the API takes it, else as PNG, and encode it.

    Args:
        who: the item, as messages name it.
        image: the image.
        max_bytes: the size cap, on the saved file.

    Returns:
        The data URI.

    Raises:
        RequestValidationError: Pillow could not save the image, or the file
            is over the cap.
    """
    fmt = image.format if image.format in _PIL_FORMATS else "PNG"
    options: dict[str, object] = {}
    if fmt in ("GIF", "WEBP") and getattr(image, "is_animated", False):
        options["save_all"] = True
    if fmt == "PNG" and image.mode not in _PNG_MODES:
        has_alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    buffer = io.BytesIO()
    try:
        if fmt == "JPEG":
            try:  # the source's quantisation tables: no second generation loss
                image.save(buffer, format=fmt, quality="keep")
            except ValueError:
                buffer = io.BytesIO()
                image.save(buffer, format=fmt)
        else:
            image.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise RequestValidationError(f"{who} could not be saved as {fmt}: {reason(exc)}") from exc
    return encode_data(who, buffer.getbuffer(), max_bytes)
