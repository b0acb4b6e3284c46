"""Request building: from an ``ImageRequest`` to the JSON body the API takes.

Two steps, because a batch checks every request before it sends any:
``check_request`` is cheap and synchronous (catalog rules, argument types,
that reference files exist); ``encode_body`` reads and encodes reference
images off the event loop and returns the bytes to POST, which retries reuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from .._catalog import parse_pixel_size, validate_fields
from .._exceptions import RequestValidationError
from .._models import ImageRequest
from .b64 import join_ascii_sliced
from .images import check_image_inputs, encode_image_inputs

__all__ = ["RESPONSE_FORMATS", "check_request", "encode_body"]

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
    check_image_inputs(request.images, max_bytes=max_image_bytes)
    if (model, size, aspect_ratio) == (request.model, request.size, request.aspect_ratio):
        return request
    return attrs.evolve(request, model=model, size=size, aspect_ratio=aspect_ratio)


async def encode_body(request: ImageRequest, *, max_image_bytes: int) -> bytes:
    """The JSON body of a checked request: ``None`` fields left out, images encoded.

    Raises:
        RequestValidationError: a reference image could not be read or is not
            an image.
    """
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    for name in ("size", "aspect_ratio", "quality", "response_format"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.extra_body:
        body.update(request.extra_body)
    try:
        head = _JSON.encode(body).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        # check_request has cleared every field: only an extra_body changed since can fail
        raise RequestValidationError(f"the request cannot be sent as JSON: {exc}") from exc
    if not request.images:
        return head
    encoded = await encode_image_inputs(request.images, max_bytes=max_image_bytes)
    # A checked data URI is pure ASCII base64 and needs no JSON escaping. Splicing
    # it in slice by slice, in a worker thread, spares the loop the GIL-holding
    # json.dumps scan and str.encode of tens of megabytes.
    parts: list[bytes | str] = [head[:-1], b',"images":[']
    for number, item in enumerate(encoded):
        if number:
            parts.append(b",")
        if item.startswith("data:"):
            parts += [b'"', item, b'"']
        else:
            parts.append(json.dumps(item).encode())
    parts.append(b"]}")
    return await anyio.to_thread.run_sync(join_ascii_sliced, parts)
