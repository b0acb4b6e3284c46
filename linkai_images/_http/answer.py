"""Big JSON answers decoded without stalling the event loop.

An answer carrying a 20 MB image inline (``b64_json``) is 27 MB of JSON.
``json.loads`` of it is one C call holding the GIL for tens of milliseconds:
on the event loop it stops every other request, and in a worker thread it
stops them just as long, because the loop needs the GIL to run.

``loads_sliced`` (run in a worker thread) takes the big strings out first:
it walks the answer's string literals with ``bytes.find``, slice by slice,
releasing the GIL between slices. A string value of at least
``_BIG_STRING`` bytes, pure ASCII and without escapes (base64 always is), is
turned into a ``str`` slice by slice (on CPython copied into a ``str`` made at
its full length, with the GIL released for each copy: ``_Filler``) and
replaced in the JSON text by a placeholder; ``json.loads`` then parses what is
left (a few hundred bytes) and the placeholders are swapped back. Anything else
is left to ``json.loads`` as it is, so the result always equals
``json.loads(content)``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

__all__ = ["BIG_ANSWER", "loads_sliced"]

#: Answers from this many bytes up are decoded by ``loads_sliced`` in a worker thread.
BIG_ANSWER = 1024 * 1024

#: String values from this many bytes up are taken out before ``json.loads``.
_BIG_STRING = 64 * 1024
#: Bytes scanned or converted per slice, between two releases of the GIL.
_SLICE = 256 * 1024
#: What a JSON string taken out may not hold: raw control characters, non-ASCII bytes.
_NOT_TEXT = re.compile(rb"[^\x20-\x7f]")


def loads_sliced(content: bytes) -> Any:
    """``json.loads(content)``, its big strings converted slice by slice.

    Meant to be called in a worker thread.

    Raises:
        ValueError: ``content`` is not JSON (as ``json.loads`` raises).
    """
    token = f"\x00linkai-{os.urandom(8).hex()}:"
    skeleton = bytearray()
    strings: list[str] = []
    view = memoryview(content)
    size = len(content)
    position = 0
    while True:
        opening = _find(content, b'"', position, size)
        if opening < 0:
            break
        closing = _closing_quote(content, opening + 1, size)
        if closing < 0:
            break  # unterminated: json.loads says what is wrong
        value = (
            _text(content, opening + 1, closing)
            if closing - opening > _BIG_STRING
            and _find(content, b"\\", opening + 1, closing) < 0
            and content[closing + 1 : closing + 64].lstrip()[:1] != b":"
            else None
        )
        if value is None:
            skeleton += view[position : closing + 1]
        else:
            skeleton += view[position:opening]
            skeleton += json.dumps(f"{token}{len(strings)}").encode()
            strings.append(value)
        position = closing + 1
    skeleton += view[position:]
    decoded = json.loads(skeleton)
    return _restore(decoded, token, strings) if strings else decoded


def _find(content: bytes, needle: bytes, start: int, end: int) -> int:
    """``content.find(needle, start, end)``, one slice at a time."""
    while start < end:
        stop = min(start + _SLICE, end)
        found = content.find(needle, start, stop)
        if found >= 0:
            return found
        start = stop
        time.sleep(0)
    return -1


def _closing_quote(content: bytes, start: int, end: int) -> int:
    """The quote that ends the string literal starting at ``start``, or -1."""
    while True:
        found = _find(content, b'"', start, end)
        if found < 0:
            return -1
        backslashes = 0
        while content[found - 1 - backslashes] == 0x5C:  # an escaped quote is preceded
            backslashes += 1  # by an odd number of backslashes
        if backslashes % 2 == 0:
            return found
        start = found + 1


def _text(content: bytes, start: int, end: int) -> str | None:
    """``content[start:end]`` as a ``str``, slice by slice; ``None`` unless printable ASCII.

    Each slice is checked (JSON refuses raw control characters; base64 is
    ASCII) while holding the GIL, then copied with it released.
    """
    view = memoryview(content)
    fill = _filler(content, end - start)
    text = "" if fill is None else fill.text
    for offset in range(start, end, _SLICE):
        if offset > start:
            time.sleep(0)
        piece = view[offset : min(offset + _SLICE, end)]
        if _NOT_TEXT.search(piece):
            return None
        if fill is not None:
            fill.copy(offset - start, offset, len(piece))
            continue
        try:
            text += str(piece, "ascii")
        except UnicodeDecodeError:
            return None
    return text


class _Filler:
    """A new ASCII ``str`` of a known length, written from ``bytes`` with the GIL released.

    A ``str`` of 27 MB made in one call (``"".join``, ``bytes.decode``) is
    written while the GIL is held, and writing fresh memory is mostly page
    faults: 30-90 ms measured on this machine's VM, during which the event
    loop cannot run. Grown slice by slice (``+=``), it is copied whole at each
    slice once the allocator serves it from a heap rather than ``mmap``
    (quadratic: slices of 3 ms growing to 11 ms). Here the string is created
    at its final length (``PyUnicode_New``: allocated, not written) and each
    slice is copied in by ``memmove`` through ctypes, which releases the GIL
    for the call, page faults included. Nobody else holds the string until
    it is complete and returned.
    """

    __slots__ = ("_source", "_target", "text")

    def __init__(self, text: str, target: int, source: int) -> None:
        self.text = text
        self._target = target
        self._source = source

    def copy(self, into: int, start: int, size: int) -> None:
        """Copy ``size`` bytes of the source from ``start`` to the text at ``into``."""
        import ctypes

        ctypes.memmove(self._target + into, self._source + start, size)


def _filler(content: bytes, size: int) -> _Filler | None:
    """A ``_Filler`` of ``size`` characters over ``content``; ``None`` off CPython."""
    if sys.implementation.name != "cpython" or type(content) is not bytes:
        return None
    import ctypes

    api = ctypes.pythonapi
    new = api.PyUnicode_New
    new.restype, new.argtypes = ctypes.py_object, (ctypes.c_ssize_t, ctypes.c_uint32)
    data = api.PyUnicode_AsUTF8AndSize
    data.restype, data.argtypes = ctypes.c_void_p, (ctypes.py_object, ctypes.c_void_p)
    text = new(size, 127)  # compact ASCII: its UTF-8 form is its own buffer
    target = data(text, None)
    source = ctypes.cast(ctypes.c_char_p(content), ctypes.c_void_p).value
    if not isinstance(text, str) or target is None or source is None:
        return None
    return _Filler(text, target, source)


def _restore(value: Any, token: str, strings: list[str]) -> Any:
    if isinstance(value, str):
        if value.startswith(token):
            return strings[int(value[len(token) :])]
        return value
    if isinstance(value, list):
        return [_restore(item, token, strings) for item in value]
    if isinstance(value, dict):
        return {key: _restore(item, token, strings) for key, item in value.items()}
    return value
