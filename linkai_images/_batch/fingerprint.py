"""A request's fingerprint: what makes two requests of two runs the same request.

``fingerprint(request)`` is the sha256 of the canonical JSON of a checked
request's fields (model filled in, pixel sizes in tier form), reference
images taken by their *content*: the sha256 of a file's or a buffer's bytes
(a file moved or copied still matches; one edited in place does not), URLs
and data URIs by their text. The checkpoint journal matches the requests
of a rerun to its records by it, so the input may be reordered.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import anyio

from .._models import ImageRequest

__all__ = ["fingerprint"]

_CHUNK = 1 << 20
_URL_PREFIXES = ("http://", "https://", "data:")


class _Unfingerprintable(Exception):
    """A reference image that cannot be read twice (a one-shot stream)."""


def _sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_text_image(image: object) -> bool:
    return isinstance(image, str) and image[:8].lower().startswith(_URL_PREFIXES)


def _image_key(image: object) -> str:
    """A stable key for one reference image; may read files (call it off the event loop)."""
    if isinstance(image, str) and _is_text_image(image):
        return "text:" + hashlib.sha256(image.encode()).hexdigest()
    if isinstance(image, (str, os.PathLike)):
        try:
            return "sha256:" + _sha256_file(image)
        except OSError:
            return "path:" + os.fsdecode(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(image).hexdigest()
    if hasattr(image, "tobytes") and hasattr(image, "mode") and hasattr(image, "size"):
        pil: Any = image  # a PIL image: its pixels, mode and size
        pixels = hashlib.sha256(pil.tobytes()).hexdigest()
        return f"pil:{pil.mode}:{pil.size[0]}x{pil.size[1]}:{pixels}"
    read = getattr(image, "read", None)
    seekable = getattr(image, "seekable", None)
    if callable(read) and callable(seekable) and seekable():
        stream: Any = image
        position = stream.tell()
        digest = hashlib.sha256()
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        finally:
            stream.seek(position)
        return "sha256:" + digest.hexdigest()
    raise _Unfingerprintable(type(image).__name__)


def _fingerprint(request: ImageRequest) -> str | None:
    try:
        images = [_image_key(image) for image in request.images]
    except _Unfingerprintable:
        return None
    fields = {
        "model": request.model,
        "prompt": request.prompt,
        "images": images,
        "size": request.size,
        "aspect_ratio": request.aspect_ratio,
        "quality": request.quality,
        "response_format": request.response_format,
        "extra_body": dict(request.extra_body) if request.extra_body is not None else None,
    }
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def fingerprint(request: ImageRequest) -> str | None:
    """The fingerprint of a checked request, or ``None`` when it has none.

    Requests with local reference images are hashed on a worker thread (the
    files are read). A reference image given as a one-shot stream (a file
    object that cannot seek back) has no stable fingerprint: such a request
    is sent every run and not journaled.
    """
    if all(_is_text_image(image) for image in request.images):
        return _fingerprint(request)
    return await anyio.to_thread.run_sync(_fingerprint, request)
