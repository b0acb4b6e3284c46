"""Request building: from an ``ImageRequest`` to the JSON body the API takes.

Two steps, because a batch checks every request before it sends any:
``check_request`` is cheap and synchronous (catalog rules, argument types,
that reference files exist); ``encode_body`` gets the reference images from
the client's ``ImageCache`` (reading and encoding each distinct one once, off
the event loop) and returns the body as pieces: the JSON around the images,
and each image's encoded bytes, shared with every other request that uses
it. The transports write the pieces one after the other (``_http/stream.py``);
no request holds a concatenated copy, and retries reuse the same pieces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .._catalog import SIZE_TIERS, parse_pixel_size, validate_fields
from .._exceptions import RequestValidationError
from .._models import ImageRequest
from .cache import CachedImage, ImageCache

__all__ = ["RESPONSE_FORMATS", "EncodedBody", "check_request", "encode_body", "encode_json"]

#: The resolution tiers by their case-folded names: sizes are case-insensitive.
_TIERS_FOLDED = {tier.casefold(): tier for tier in SIZE_TIERS}

RESPONSE_FORMATS = ("url", "b64_json")
#: Compact JSON, UTF-8 left as is; one encoder, not one per call as json.dumps makes.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_OWN_FIELDS = frozenset(
    ("model", "prompt", "images", "size", "aspect_ratio", "quality", "response_format")
)


def _check_str(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise RequestValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a bad decode
            raise RequestValidationError(
                f"{name} has {value[exc.start]!r} at position {exc.start}, a lone surrogate "
                "that UTF-8 cannot encode; it usually comes from text decoded with "
                "errors='surrogateescape': decode the text as UTF-8 first"
            ) from None


def _check_extra_body(extra_body: object) -> None:
    if not isinstance(extra_body, Mapping):
        raise RequestValidationError(f"extra_body must be a dict, not {type(extra_body).__name__}")
    clash = sorted(_OWN_FIELDS & set(extra_body))
    if clash:
        raise RequestValidationError(
            f"extra_body repeats {', '.join(clash)}; pass them as arguments instead"
        )
    try:
        _JSON.encode(dict(extra_body)).encode()
    except RecursionError:
        raise RequestValidationError("extra_body is nested too deeply to send as JSON") from None
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError included: a lone surrogate
        raise RequestValidationError(f"extra_body cannot be sent as JSON: {exc}") from None


def check_request(
    request: ImageRequest, default_model: str | None, *, max_image_bytes: int | None = None
) -> ImageRequest:
    """Validate ``request`` and fill in the model; nothing is read or sent.

    An OpenAI-style pixel ``size`` (``2048x1152``) is rewritten to its tier
    and aspect ratio.

    Returns:
        The request with ``model`` set and ``size`` in tier form.

    Raises:
        RequestValidationError: what is wrong, with the allowed values.
    """
    for name in ("prompt", "model", "size", "aspect_ratio", "quality", "response_format"):
        _check_str(name, getattr(request, name))
    if not request.prompt.strip():
        raise RequestValidationError("prompt is empty; describe the image to generate")
    model = request.model or default_model
    if not model:
        raise RequestValidationError(
            "no model: pass model=... (e.g. 'gpt-image-2') or set default_model on the client"
        )
    size, aspect_ratio = request.size, request.aspect_ratio
    if size is not None:
        size = _TIERS_FOLDED.get(size.strip().casefold(), size)  # "2k" is the tier "2K"
        pixels = parse_pixel_size(size)
        if pixels is not None:
            tier, ratio = pixels
            if aspect_ratio is not None and aspect_ratio != ratio:
                raise RequestValidationError(
                    f"size {size!r} is {tier} at {ratio}, but aspect_ratio {aspect_ratio!r} "
                    "was given too; pass one of them"
                )
            size, aspect_ratio = tier, ratio
    if request.response_format is not None and request.response_format not in RESPONSE_FORMATS:
        raise RequestValidationError(
            f"response_format {request.response_format!r} is unknown; "
            f"choose one of {', '.join(RESPONSE_FORMATS)}"
        )
    if request.extra_body is not None:
        _check_extra_body(request.extra_body)
    validate_fields(
        model,
        size=size,
        aspect_ratio=aspect_ratio,
        quality=request.quality,
        image_count=len(request.images),
    )
    if request.images:
        # Imported at the first request with images: a call without them never needs it.
        from .images import check_image_inputs

        check_image_inputs(request.images, max_bytes=max_image_bytes)
    if (model, size, aspect_ratio) == (request.model, request.size, request.aspect_ratio):
        return request
    return attrs.evolve(request, model=model, size=size, aspect_ratio=aspect_ratio)


class EncodedBody:
    """A request body as pieces, some of them images shared through the cache.

    ``release()`` once the call is over (retries included): the images are
    then no longer in use by this request.
    """

    __slots__ = ("_cache", "_images", "pieces")

    def __init__(
        self,
        pieces: tuple[bytes, ...],
        cache: ImageCache | None = None,
        images: tuple[CachedImage, ...] = (),
    ) -> None:
        self.pieces = pieces
        self._cache = cache
        self._images = images

    def __len__(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    def release(self) -> None:
        """Hand the images back to the cache; idempotent."""
        images, self._images = self._images, ()
        if self._cache is not None:
            for image in images:
                self._cache.release(image)


def encode_json(request: ImageRequest) -> EncodedBody:
    """The JSON body of a checked request without reference images, built at once.

    ``encode_body`` without its trip through a coroutine, for the usual call.

    Raises:
        RequestValidationError: the body cannot be sent as JSON.
    """
    return EncodedBody((_head(request),))


def _head(request: ImageRequest) -> bytes:
    """The JSON of every field but ``images``: ``None`` fields left out."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    for name in ("size", "aspect_ratio", "quality", "response_format"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.extra_body:
        body.update(request.extra_body)
    try:
        return _JSON.encode(body).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # check_request has cleared every field: only an extra_body changed since can fail
        raise RequestValidationError(f"the request cannot be sent as JSON: {exc}") from exc


async def encode_body(
    request: ImageRequest, *, max_image_bytes: int, cache: ImageCache
) -> EncodedBody:
    """The JSON body of a checked request: ``None`` fields left out, images from ``cache``.

    Raises:
        RequestValidationError: a reference image could not be read or is not
            an image.
    """
    head = _head(request)
    if not request.images:
        return EncodedBody((head,))
    from .images import image_sources

    sources = image_sources(request.images, max_bytes=max_image_bytes)
    # An encoded image is pure ASCII base64 behind a data URI header: it needs no
    # JSON escaping, so the body is the JSON text around it, and it, unchanged.
    pieces: list[bytes] = []
    text = bytearray(head[:-1] + b',"images":[')
    images: list[CachedImage] = []
    try:
        for number, source in enumerate(sources):
            if number:
                text += b","
            if isinstance(source, str):
                text += json.dumps(source).encode()
                continue
            image = await cache.acquire(source)
            images.append(image)
            pieces += [bytes(text + b'"'), image.data]
            text = bytearray(b'"')
    except BaseException:
        for image in images:
            cache.release(image)
        raise
    pieces.append(bytes(text + b"]}"))
    return EncodedBody(tuple(pieces), cache, tuple(images))
