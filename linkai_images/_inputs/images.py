"""Reference images: what ``images=`` accepts, checked, then turned into strings to send.

Two phases, because a batch checks every request before it sends any:

- ``check_image_inputs`` is cheap and synchronous: types, URL schemes, data
  URI headers, that files exist. It reads no file content.
- ``encode_image_inputs`` produces the strings: URLs and data URIs as given,
  local data as ``data:<mime>;base64,...`` with the type sniffed from the
  bytes (``_sniff.py``). File reads and PIL saves (``_local.py``), base64
  encoding and the validation of big data URIs (``_b64.py``) run in worker
  threads, so the event loop never waits on them.

The result is plain strings, computed once per call: the client keeps them
for its retries, so a file object is read once and a file changed on disk
between attempts does not change what is sent.
"""

from __future__ import annotations

import binascii
import functools
import io
import os
import re
import reprlib
import stat
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeGuard, cast
from urllib.parse import urlsplit

import anyio
import attrs

from .._config import DEFAULT_MAX_IMAGE_BYTES
from .._exceptions import RequestValidationError
from .._models import BinaryReader, ImageInput
from . import local
from .b64 import b64_decoded_size, b64_error, join_ascii_sliced
from .cache import ImageSource, Loaded
from .local import (
    ALLOWED_TYPES,
    encode_data,
    encode_file,
    encode_path,
    encode_pil,
    not_an_image,
    reason,
    too_big,
)
from .sniff import ALLOWED_MIME_TYPES, SNIFF_BYTES, sniff_mime

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "BinaryReader",
    "ImageInput",
    "check_image_inputs",
    "encode_image_inputs",
    "image_sources",
]


_ALLOWED_KINDS = (
    "an http(s) URL, a data:image/...;base64 URI, a file path, bytes, "
    "a binary file object or a PIL image"
)
_DATA_URI_FORM = "'data:image/<png|jpeg|webp|gif>;base64,<data>'"
# A scheme is short; matching a bounded head keeps a 30 MB string from being scanned.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://")
_SCHEME_HEAD = 40
_URL_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
# Up to this many base64 characters a data URI is fully validated in the check
# itself; longer ones are validated in a worker thread.
_INLINE_CHARS = 64 * 1024
_repr = reprlib.Repr()
_repr.maxother = 60


@attrs.frozen
class _Plan:
    """What a checked item needs: the string to send now, or blocking jobs making it.

    ``work`` makes the string (``encode_image_inputs``); ``source`` says how the
    image cache finds or makes the same thing as body bytes (``image_sources``).
    """

    ready: str | None = None
    work: Callable[[], str] | None = None
    source: ImageSource | None = None


def check_image_inputs(items: Sequence[ImageInput], *, max_bytes: int | None = None) -> None:
    """Check reference images without reading any file content.

    Cheap enough to run on the event loop for every request of a batch
    before any is sent: types, URL schemes, data URI headers and small
    payloads, that paths exist and are readable files (one ``stat``).

    Args:
        items: the reference images; a single item is taken as a list of one.
        max_bytes: when given, also refuse items whose size is known without
            reading (files, bytes, data URIs) and is over this cap.

    Raises:
        RequestValidationError: the first item that is refused; the message
            names it (``images[i]``) and says what is allowed.
    """
    for index, item in enumerate(_as_items(items)):
        _plan(f"images[{index}]", item, max_bytes)


async def encode_image_inputs(
    items: Sequence[ImageInput], *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> list[str]:
    """The strings to send as ``images``: URLs and data URIs as given, local data encoded.

    Local data becomes ``data:<mime>;base64,...`` with the MIME type sniffed
    from the bytes. Reads, PIL saves, base64 encoding and the validation of
    big data URIs run in worker threads (``anyio.to_thread``), in slices, so
    the event loop keeps running. Pure: call it once and reuse the result.

    Args:
        items: the reference images; a single item is taken as a list of one.
        max_bytes: the cap on each local image's size in bytes, before base64
            (a data URI's decoded size counts).

    Returns:
        One string per item, in order.

    Raises:
        RequestValidationError: an item is refused: wrong type, missing or
            unreadable file, empty, not a PNG/JPEG/WEBP/GIF, over the cap, or
            a malformed data URI. Chained from the ``OSError`` where there is
            one.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise RequestValidationError(f"max_bytes must be a positive int, not {max_bytes!r}")
    plans = [_plan(f"images[{i}]", item, max_bytes) for i, item in enumerate(_as_items(items))]
    encoded = []
    for plan in plans:
        if plan.ready is not None:
            encoded.append(plan.ready)
        else:
            assert plan.work is not None
            encoded.append(await anyio.to_thread.run_sync(plan.work))
    return encoded


def image_sources(
    items: Sequence[ImageInput], *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> list[str | ImageSource]:
    """What a request body needs of each image: a string to send as is, or a cache source.

    URLs and small data URIs come back as strings; everything else as an
    ``ImageSource`` for the client's ``ImageCache``, which reads and encodes
    each distinct image once (in worker threads). Nothing is read here
    beyond a ``stat`` per path.

    Raises:
        RequestValidationError: as ``encode_image_inputs``, for what is known
            without reading.
    """
    sources: list[str | ImageSource] = []
    for index, item in enumerate(_as_items(items)):
        plan = _plan(f"images[{index}]", item, max_bytes)
        if plan.ready is not None:
            sources.append(plan.ready)
        else:
            assert plan.source is not None
            sources.append(plan.source)
    return sources


def _as_items(items: object) -> Sequence[object]:
    if isinstance(items, (str, bytes, bytearray, memoryview, os.PathLike)):
        return (items,)  # one item, not a sequence of characters or bytes
    if isinstance(items, Sequence):
        return items
    raise RequestValidationError(
        f"images must be a list of reference images, not {type(items).__name__}"
    )


def _plan(label: str, item: object, max_bytes: int | None) -> _Plan:
    cap = DEFAULT_MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    if isinstance(item, str):
        return _plan_str(label, item, max_bytes, cap)
    if isinstance(item, os.PathLike):
        try:
            path = os.fspath(item)
        except TypeError as exc:
            raise RequestValidationError(f"{label}: {_repr.repr(item)} is not a path") from exc
        return _plan_path(label, path, max_bytes, cap)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return _plan_buffer(label, item, max_bytes, cap)
    if _is_pil_image(item):
        who = f"{label}: PIL image ({item.mode} {item.width}x{item.height})"
        if item.width == 0 or item.height == 0:
            raise RequestValidationError(f"{who} is empty")
        return _Plan(
            work=functools.partial(encode_pil, who, item, cap),
            source=ImageSource(
                key=None,
                load=functools.partial(_load_pil, who, item),
                encode=functools.partial(local.data_uri_ascii, who, max_bytes=cap),
            ),
        )
    if callable(getattr(item, "read", None)):
        return _plan_file(label, cast(BinaryReader, item), cap)
    shown = "None" if item is None else f"{type(item).__name__} {_repr.repr(item)}"
    raise RequestValidationError(
        f"{label}: {shown} is not a reference image; pass {_ALLOWED_KINDS}"
    )


def _show(text: str, limit: int = 60) -> str:
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} chars)"


def _plan_str(label: str, text: str, max_bytes: int | None, cap: int) -> _Plan:
    if not text:
        raise RequestValidationError(f"{label}: the empty string is not a reference image")
    head = text[:_SCHEME_HEAD].lower()
    if head.startswith("data:"):
        return _plan_data_uri(f"{label}: data URI {_show(text, 40)}", text, max_bytes)
    match = _SCHEME.match(head)
    if match is None and not head.startswith(("http:", "https:")):
        return _plan_path(label, text, max_bytes, cap)
    who = f"{label}: URL {_show(text)}"
    scheme = match.group()[:-3] if match else head.partition(":")[0]
    if scheme not in ("http", "https"):
        raise RequestValidationError(
            f"{who} has scheme {scheme!r}; only http and https URLs are sent "
            "(pass a local file as a path)"
        )
    try:
        host = urlsplit(text).hostname if match else None
    except ValueError as exc:
        raise RequestValidationError(f"{who} is malformed: {reason(exc)}") from exc
    if not host:
        raise RequestValidationError(f"{who} has no host; expected 'https://host/path'")
    if _URL_BAD_CHARS.search(text):
        raise RequestValidationError(
            f"{who} contains spaces or control characters; percent-encode them"
        )
    return _Plan(ready=text)


def _plan_data_uri(who: str, text: str, max_bytes: int | None) -> _Plan:
    comma = text.find(",", 0, 100)
    header = text[:comma] if comma >= 0 else ""
    if not header.startswith("data:") or not header.endswith(";base64"):
        raise RequestValidationError(f"{who} is malformed; expected {_DATA_URI_FORM}")
    mime = header[len("data:") : -len(";base64")]
    if mime not in ALLOWED_MIME_TYPES:
        hint = "; write image/jpeg" if mime == "image/jpg" else ""
        raise RequestValidationError(
            f"{who} declares {mime!r}; allowed: {', '.join(ALLOWED_MIME_TYPES)}{hint}"
        )
    start = comma + 1
    length = len(text) - start
    if length == 0:
        raise RequestValidationError(f"{who} has no data after the comma")
    # The head's characters and the total length now; every character below.
    problem = b64_error(text[start : start + 16])
    if problem is None and length % 4:
        problem = f"its length {length} is not a multiple of 4 (truncated?)"
    if problem is not None:
        raise RequestValidationError(f"{who} has invalid base64: {problem}")
    actual = sniff_mime(binascii.a2b_base64(text[start : start + 16])[:SNIFF_BYTES])
    if actual != mime:
        found = actual or f"not a {ALLOWED_TYPES} image"
        raise RequestValidationError(f"{who} declares {mime} but its data is {found}")
    size = b64_decoded_size(text, start)
    if max_bytes is not None and size > max_bytes:
        raise too_big(who, size, max_bytes)
    if length <= _INLINE_CHARS:
        return _Plan(ready=_validated_data_uri(who, text, start))
    return _Plan(
        work=functools.partial(_validated_data_uri, who, text, start),
        source=ImageSource(
            key=("object", id(text)),
            owner=text,
            load=functools.partial(_load_data_uri, who, text, start),
        ),
    )


def _validated_data_uri(who: str, text: str, start: int) -> str:
    problem = b64_error(text, start)
    if problem is not None:
        raise RequestValidationError(f"{who} has invalid base64: {problem}")
    return text


def _load_data_uri(who: str, text: str, start: int) -> Loaded:
    return Loaded(join_ascii_sliced([_validated_data_uri(who, text, start)]))


def _load_path(who: str, path: str | bytes, max_bytes: int) -> Loaded:
    data, identity = local.read_path(who, path, max_bytes)
    return Loaded(data, key=("file", path, *identity))


def _load_file(who: str, file: BinaryReader, max_bytes: int) -> Loaded:
    return Loaded(local.read_file(who, file, max_bytes))


def _load_pil(who: str, image: PIL.Image.Image) -> Loaded:
    return Loaded(local.save_pil(who, image))


def _load_view(view: memoryview) -> Loaded:
    return Loaded(view)


def _plan_path(label: str, path: str | bytes, max_bytes: int | None, cap: int) -> _Plan:
    who = f"{label}: file {_show(os.fsdecode(path), 200)}"
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise RequestValidationError(
            f"{who} does not exist (a string that is not an http(s) URL or a data URI "
            f"is taken as a path; allowed: {_ALLOWED_KINDS})"
        ) from exc
    except (OSError, ValueError) as exc:
        raise RequestValidationError(f"{who} cannot be accessed: {reason(exc)}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise RequestValidationError(f"{who} is a directory; pass an image file")
    if not stat.S_ISREG(info.st_mode):
        raise RequestValidationError(f"{who} is not a regular file")
    if not os.access(path, os.R_OK):
        raise RequestValidationError(f"{who} is not readable (permission denied)")
    if info.st_size == 0:
        raise RequestValidationError(f"{who} is empty")
    if max_bytes is not None and info.st_size > max_bytes:
        raise too_big(who, info.st_size, max_bytes)
    return _Plan(
        work=functools.partial(encode_path, who, path, cap),
        source=ImageSource(
            key=("file", path, *local.file_identity(info)),
            load=functools.partial(_load_path, who, path, cap),
            encode=functools.partial(local.data_uri_ascii, who, max_bytes=cap),
        ),
    )


def _plan_buffer(
    label: str, item: bytes | bytearray | memoryview, max_bytes: int | None, cap: int
) -> _Plan:
    view = memoryview(item)
    if not view.c_contiguous:
        raise RequestValidationError(
            f"{label}: the memoryview is not contiguous; pass bytes(view) instead"
        )
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    who = f"{label}: {type(item).__name__} object"
    if view.nbytes == 0:
        raise RequestValidationError(f"{who} is empty")
    head = bytes(view[: SNIFF_BYTES + 1])
    if sniff_mime(head) is None:
        raise not_an_image(who, head)
    if max_bytes is not None and view.nbytes > max_bytes:
        raise too_big(who, view.nbytes, max_bytes)
    # Only an immutable bytes object is named by its identity; a bytearray or a
    # memoryview may change between two requests, so their content is hashed.
    immutable = type(item) is bytes
    return _Plan(
        work=functools.partial(encode_data, who, view, cap),
        source=ImageSource(
            key=("object", id(item)) if immutable else None,
            owner=item if immutable else None,
            load=functools.partial(_load_view, view),
            encode=functools.partial(local.data_uri_ascii, who, max_bytes=cap),
        ),
    )


def _plan_file(label: str, file: BinaryReader, cap: int) -> _Plan:
    name = getattr(file, "name", None)
    shown = _show(os.fsdecode(name), 200) if isinstance(name, (str, bytes)) else type(file).__name__
    who = f"{label}: file object {shown}"
    if isinstance(file, io.TextIOBase):
        raise RequestValidationError(f"{who} is open in text mode; open it in binary mode ('rb')")
    if getattr(file, "closed", False) is True:
        raise RequestValidationError(f"{who} is closed")
    readable = getattr(file, "readable", None)
    try:
        unreadable = callable(readable) and readable() is False
    except (OSError, ValueError) as exc:
        raise RequestValidationError(f"{who} cannot be read: {reason(exc)}") from exc
    if unreadable:
        raise RequestValidationError(f"{who} is not open for reading")
    return _Plan(
        work=functools.partial(encode_file, who, file, cap),
        source=ImageSource(
            key=None,
            load=functools.partial(_load_file, who, file, cap),
            encode=functools.partial(local.data_uri_ascii, who, max_bytes=cap),
        ),
    )


def _is_pil_image(item: object) -> TypeGuard[PIL.Image.Image]:
    # Only an imported PIL.Image can have made the object: look it up, never import it.
    module = sys.modules.get("PIL.Image")
    image_class = getattr(module, "Image", None)
    return isinstance(image_class, type) and isinstance(item, image_class)
