"""Base64 for big buffers, in slices, so that a worker thread never starves the event loop.

``base64.b64encode`` of 20 MB is one C call that holds the GIL for 40-75 ms:
run in a worker thread, it still stalls the event loop that long, because
the loop needs the GIL to run at all. Encoding slice by slice returns to the
interpreter between slices, where the GIL can change hands. Three choices
keep the loop's stall near one slice's time (measured in
``benchmarks/bench_encode.py``):

- ``DEFAULT_SLICE_BYTES`` is 192 KiB (a multiple of 3, so the pieces
  concatenate to exactly the one-shot encoding, with no padding inside):
  smaller slices cost throughput, larger ones lengthen the stall.
- ``time.sleep(0)`` after each slice releases the GIL at once, so a waiting
  loop thread takes it now instead of after the 5 ms switch interval.
- The result ``str`` is grown with ``+=``. CPython appends in place to a
  ``str`` nobody else references (``realloc``, ``mremap`` for big blocks), so
  each step touches one slice of fresh memory. Building bytes and decoding
  them once would be a single GIL-held copy into 28 MB of fresh pages, 20 ms
  on a machine with slow page faults. Where that CPython behaviour is not
  known to hold (other interpreters) or not needed (free-threaded builds have
  no GIL to hold), the portable join-then-decode path is used. When the
  allocator cannot grow the block where it is, an append copies what was
  built so far with the GIL held: rare when each call frees its bodies, but
  seen (stalls of tens of ms) in a process that keeps hundreds of MB alive.

``join_ascii_sliced`` is the matching tool for the request body: it turns the
data URIs back into bytes in slices and joins them with the GIL released.
``b64decode_sliced`` decodes big inline answers (``b64_json``) the same way.
"""

from __future__ import annotations

import base64
import binascii
import sys
import sysconfig
import time
from collections.abc import Sequence

__all__ = [
    "DEFAULT_SLICE_BYTES",
    "DEFAULT_SLICE_CHARS",
    "b64_decoded_size",
    "b64decode_sliced",
    "b64_error",
    "b64encode_ascii_sliced",
    "b64encode_sliced",
    "join_ascii_sliced",
]

#: Bytes encoded per slice: 192 KiB, a multiple of 3.
DEFAULT_SLICE_BYTES = 3 * 2**16

#: Characters checked per slice when validating base64 text.
DEFAULT_SLICE_CHARS = 4 * 2**16

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_ALPHABET_STR = frozenset(_ALPHABET.decode("ascii"))

_IN_PLACE_APPEND = sys.implementation.name == "cpython" and not sysconfig.get_config_var(
    "Py_GIL_DISABLED"
)


def _as_byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def b64encode_sliced(
    data: bytes | bytearray | memoryview,
    *,
    prefix: str = "",
    slice_bytes: int = DEFAULT_SLICE_BYTES,
) -> str:
    """``prefix`` followed by the standard base64 of ``data``, encoded slice by slice.

    Equal to ``prefix + base64.b64encode(data).decode()``, but the GIL is
    released between slices, so an event loop in another thread keeps
    running. Meant to be called in a worker thread.

    Args:
        data: a C-contiguous buffer.
        prefix: ASCII text to put before the base64 (a data URI header), so
            that the result needs no further copy.
        slice_bytes: bytes per slice; a positive multiple of 3.

    Returns:
        The prefix and the base64 text, as one ``str``.

    Raises:
        ValueError: ``slice_bytes`` is not a positive multiple of 3.
    """
    if slice_bytes <= 0 or slice_bytes % 3:
        raise ValueError(f"slice_bytes must be a positive multiple of 3, not {slice_bytes}")
    view = _as_byte_view(data)
    if _IN_PLACE_APPEND:
        return _encode_appending(view, prefix, slice_bytes)
    return _encode_joining(view, prefix, slice_bytes)


def _encode_appending(view: memoryview, prefix: str, slice_bytes: int) -> str:
    out = prefix
    for start in range(0, len(view), slice_bytes):
        if start:
            time.sleep(0)
        out += binascii.b2a_base64(view[start : start + slice_bytes], newline=False).decode("ascii")
    return out


def _encode_joining(view: memoryview, prefix: str, slice_bytes: int) -> str:
    # The decode is the one long hold of the GIL left.
    return _join_encoded(view, prefix.encode("ascii"), slice_bytes).decode("ascii")


def _join_encoded(view: memoryview, prefix: bytes, slice_bytes: int) -> bytes:
    parts = [prefix]
    for start in range(0, len(view), slice_bytes):
        if start:
            time.sleep(0)
        parts.append(binascii.b2a_base64(view[start : start + slice_bytes], newline=False))
    # bytes.join copies with the GIL released.
    return b"".join(parts)


def b64encode_ascii_sliced(
    data: bytes | bytearray | memoryview,
    *,
    prefix: bytes = b"",
    slice_bytes: int = DEFAULT_SLICE_BYTES,
) -> bytes:
    """``prefix`` followed by the standard base64 of ``data``, as bytes, encoded slice by slice.

    Equal to ``prefix + base64.b64encode(data)``; the bytes a request body
    carries, with no ``str`` in between. The GIL is released between slices
    and during the final join. Meant to be called in a worker thread.

    Args:
        data: a C-contiguous buffer.
        prefix: bytes to put before the base64 (a data URI header).
        slice_bytes: bytes per slice; a positive multiple of 3.

    Returns:
        The prefix and the base64, as one ``bytes``.

    Raises:
        ValueError: ``slice_bytes`` is not a positive multiple of 3.
    """
    if slice_bytes <= 0 or slice_bytes % 3:
        raise ValueError(f"slice_bytes must be a positive multiple of 3, not {slice_bytes}")
    return _join_encoded(_as_byte_view(data), prefix, slice_bytes)


def b64decode_sliced(text: str, *, slice_chars: int = DEFAULT_SLICE_CHARS) -> bytes:
    """The bytes of the standard, padded base64 ``text``, decoded slice by slice.

    Equal to ``base64.b64decode(text, validate=True)``. A one-shot decode of
    27 MB of base64 (a 20 MB image answered inline) holds the GIL for tens of
    milliseconds, and so stalls the event loop from a worker thread; here
    the GIL is released between slices and during the final join. Meant to
    be called in a worker thread.

    Args:
        text: base64 text (ASCII; no whitespace).
        slice_chars: characters decoded per slice; a positive multiple of 4.

    Returns:
        The decoded bytes.

    Raises:
        ValueError: ``text`` is not valid base64 (``binascii.Error`` is a
            ``ValueError``), or ``slice_chars`` is not a positive multiple of 4.
    """
    if slice_chars <= 0 or slice_chars % 4:
        raise ValueError(f"slice_chars must be a positive multiple of 4, not {slice_chars}")
    if len(text) % 4:
        raise binascii.Error(f"the base64 length {len(text)} is not a multiple of 4")
    parts: list[bytes] = []
    last = len(text) - slice_chars
    for start in range(0, len(text), slice_chars):
        if start:
            time.sleep(0)
        chunk = text[start : start + slice_chars]
        if start < last and chunk.endswith("="):
            raise binascii.Error(f"'=' padding before the end, near offset {start + len(chunk)}")
        parts.append(base64.b64decode(chunk, validate=True))
    return b"".join(parts)


def _padding(text: str) -> int:
    if text.endswith("=="):
        return 2
    return 1 if text.endswith("=") else 0


def b64_decoded_size(text: str, start: int = 0) -> int:
    """The number of bytes ``text[start:]`` decodes to, computed without decoding.

    Exact for valid base64 (see ``b64_error``); an estimate otherwise.

    Args:
        text: base64 text, possibly after a header.
        start: where the base64 begins in ``text``.

    Returns:
        The decoded size in bytes.
    """
    length = len(text) - start
    return max(0, length // 4 * 3 - min(_padding(text), length))


def b64_error(text: str, start: int = 0, *, slice_chars: int = DEFAULT_SLICE_CHARS) -> str | None:
    """What is wrong with the standard, padded base64 in ``text[start:]``, or ``None``.

    Valid means what strict decoders accept: only ``A-Z a-z 0-9 + /``, a
    length that is a multiple of 4, and at most two ``=`` at the very end.
    Checked slice by slice, without copying ``text``, the GIL released
    between slices; meant for a worker thread when ``text`` is big.

    Args:
        text: the text holding the base64 (a whole data URI, say).
        start: where the base64 begins in ``text``.
        slice_chars: characters checked per slice.

    Returns:
        ``None`` when valid; otherwise a short description of the first
        defect, with its offset counted from ``start``.
    """
    length = len(text) - start
    if length <= 0:
        return "there is no base64 data"
    pad = min(_padding(text), length)
    end = len(text) - pad
    for chunk_start in range(start, end, slice_chars):
        if chunk_start != start:
            time.sleep(0)
        chunk = text[chunk_start : min(chunk_start + slice_chars, end)]
        if not chunk.isascii() or chunk.encode("ascii").translate(None, _ALPHABET):
            offset, char = next(
                (i, c) for i, c in enumerate(chunk, chunk_start - start) if c not in _ALPHABET_STR
            )
            return (
                f"character {char!r} at offset {offset} is not base64 "
                "(allowed: A-Z a-z 0-9 + / and up to two '=' at the end)"
            )
    if length % 4:
        return f"its length {length} is not a multiple of 4 (truncated, or '=' padding missing)"
    return None


def join_ascii_sliced(
    parts: Sequence[bytes | str], *, slice_chars: int = DEFAULT_SLICE_CHARS
) -> bytes:
    """The concatenation of ``parts`` as bytes, ``str`` parts encoded as ASCII slice by slice.

    For building a request body around big data URIs off the event loop: a
    one-shot ``text.encode()`` of 28 MB holds the GIL as long as a one-shot
    base64 encode would, while ``bytes.join`` copies with the GIL released.
    Meant to be called in a worker thread.

    Args:
        parts: bytes, and ASCII text (data URIs, JSON punctuation).
        slice_chars: characters encoded per slice.

    Returns:
        All parts, concatenated.

    Raises:
        UnicodeEncodeError: a ``str`` part is not ASCII.
    """
    pieces: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            pieces.append(part)
            continue
        for start in range(0, len(part), slice_chars):
            if start:
                time.sleep(0)
            pieces.append(part[start : start + slice_chars].encode("ascii"))
    return b"".join(pieces)
