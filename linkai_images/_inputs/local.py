"""Local image data to a data URI: the blocking jobs of ``encode_image_inputs``.

Each function here reads, saves or encodes, so it runs in a worker thread,
never on the event loop. Reading (``read_path``, ``read_file``, ``save_pil``)
and encoding (``encode_data`` to a ``str``, ``data_uri_ascii`` to the bytes a
request body carries) are separate steps, so that the image cache
(``cache.py``) can find an earlier encoding of the same content. ``who`` is
how error messages name the item (``images[2]: file 'cat.png'``); every
failure is a ``RequestValidationError`` chained from its cause.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from .._exceptions import RequestValidationError
from .._models import BinaryReader
from .b64 import b64encode_ascii_sliced, b64encode_sliced
from .sniff import SNIFF_BYTES, describe_head, sniff_mime

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "ALLOWED_TYPES",
    "FileIdentity",
    "data_uri_ascii",
    "encode_data",
    "encode_file",
    "encode_path",
    "encode_pil",
    "not_an_image",
    "read_file",
    "read_path",
    "reason",
    "save_pil",
    "too_big",
]

#: What names a file's content without reading it: device, inode, size, mtime and
#: ctime in nanoseconds, from ``fstat`` of the descriptor that was read.
FileIdentity = tuple[int, int, int, int, int]

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


def _mime(who: str, data: bytes | memoryview, max_bytes: int) -> str:
    if len(data) == 0:
        raise RequestValidationError(f"{who} is empty")
    if len(data) > max_bytes:
        raise too_big(who, len(data), max_bytes)
    head = bytes(data[: SNIFF_BYTES + 1])
    mime = sniff_mime(head)
    if mime is None:
        raise not_an_image(who, head)
    return mime


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
    mime = _mime(who, data, max_bytes)
    return b64encode_sliced(data, prefix=f"data:{mime};base64,")


def data_uri_ascii(who: str, data: bytes | memoryview, max_bytes: int) -> bytes:
    """``encode_data`` as the ASCII bytes a request body carries, never a ``str``.

    Raises:
        RequestValidationError: empty, over the cap, or not an allowed type.
    """
    mime = _mime(who, data, max_bytes)
    return b64encode_ascii_sliced(data, prefix=f"data:{mime};base64,".encode("ascii"))


def read_path(who: str, path: str | bytes, max_bytes: int) -> tuple[bytes, FileIdentity]:
    """Read a file (never more than the cap), and what names the content read.

    Args:
        who: the item, as messages name it.
        path: the file.
        max_bytes: the size cap.

    Returns:
        The bytes, and the file's identity taken from the open descriptor
        after reading, so that it describes the bytes returned.

    Raises:
        RequestValidationError: the file cannot be read or is over the cap.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
            info = os.fstat(file.fileno())
            if len(data) > max_bytes:
                raise too_big(who, info.st_size, max_bytes)
    except OSError as exc:
        raise RequestValidationError(f"{who} cannot be read: {reason(exc)}") from exc
    return data, file_identity(info)


def file_identity(info: os.stat_result) -> FileIdentity:
    """The ``FileIdentity`` in a stat result."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def encode_path(who: str, path: str | bytes, max_bytes: int) -> str:
    """Read a file (never more than the cap) and encode it.

    Raises:
        RequestValidationError: the file cannot be read, or ``encode_data``
            refuses its content.
    """
    return encode_data(who, read_path(who, path, max_bytes)[0], max_bytes)


def encode_file(who: str, file: BinaryReader, max_bytes: int) -> str:
    """Read a binary file object from its current position and encode it.

    Raises:
        RequestValidationError: reading failed or returned text, or
            ``encode_data`` refuses the content.
    """
    return encode_data(who, read_file(who, file, max_bytes), max_bytes)


def read_file(who: str, file: BinaryReader, max_bytes: int) -> bytes:
    """Read a binary file object from its current position (never more than the cap).

    Args:
        who: the item, as messages name it.
        file: the file object.
        max_bytes: the size cap.

    Returns:
        The bytes read.

    Raises:
        RequestValidationError: reading failed or returned text, or more
            than the cap came.
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
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def encode_pil(who: str, image: PIL.Image.Image, max_bytes: int) -> str:
    """Save a PIL image (see ``save_pil``) and encode it.

    Raises:
        RequestValidationError: Pillow could not save the image, or the file
            is over the cap.
    """
    return encode_data(who, save_pil(who, image), max_bytes)


def save_pil(who: str, image: PIL.Image.Image) -> memoryview:
    """Save a PIL image in its own format when the API takes it, else as PNG.

    Args:
        who: the item, as messages name it.
        image: the image.

    Returns:
        The saved file's bytes (the encoder checks them against the cap).

    Raises:
        RequestValidationError: Pillow could not save the image.
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
    return buffer.getbuffer()
