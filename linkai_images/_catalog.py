"""The model catalog: one data table, its validation rules, and pixel sizes.

The table is the platform documentation's (``linkai-image-api.zh.txt``). A
model code not in the table is still usable: it is sent unvalidated, since
the platform's list grows faster than this SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from ._exceptions import RequestValidationError

__all__ = [
    "ALL_ASPECT_RATIOS",
    "CATALOG",
    "SIZE_TIERS",
    "ModelSpec",
    "get_model",
    "parse_pixel_size",
    "resolve_pixels",
    "validate_fields",
]

#: Every aspect ratio the API knows, in the documentation's order.
ALL_ASPECT_RATIOS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)  # fmt: skip

#: Resolution tiers and the pixel length of the image's long side.
SIZE_TIERS: Mapping[str, int] = {"512": 512, "1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}

_SHORT_SIDE_STEP = 16


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What one model accepts.

    An empty ``sizes`` or ``qualities`` means the model has no such field: the
    platform ignores it when sent. ``None`` defaults mean "automatic": the
    field is left out.

    Attributes:
        code: the model code sent as ``model``.
        name: the product name.
        sizes: resolution tiers offered.
        default_size: the tier used when ``size`` is left out.
        aspect_ratios: aspect ratios offered.
        default_aspect_ratio: the ratio used when left out (``None``: automatic).
        qualities: quality values offered.
        default_quality: the quality used when left out.
        max_images: the most reference images one request may carry.
    """

    code: str
    name: str
    sizes: tuple[str, ...]
    default_size: str | None
    aspect_ratios: tuple[str, ...]
    default_aspect_ratio: str | None
    qualities: tuple[str, ...]
    default_quality: str | None
    max_images: int


def _spec(
    code: str,
    name: str,
    sizes: str,
    size: str | None,
    ratios: tuple[str, ...],
    ratio: str | None,
    qualities: str,
    quality: str | None,
    max_images: int,
) -> ModelSpec:
    return ModelSpec(
        code=code,
        name=name,
        sizes=tuple(sizes.split()),
        default_size=size,
        aspect_ratios=ratios,
        default_aspect_ratio=ratio,
        qualities=tuple(qualities.split()),
        default_quality=quality,
        max_images=max_images,
    )


_ALL = ALL_ASPECT_RATIOS
_GPT_RATIOS = ("1:1", "3:2", "2:3", "16:9", "9:16")

#: The documented models, by code.
CATALOG: Mapping[str, ModelSpec] = {
    s.code: s
    for s in (
        _spec("gpt-image-2", "GPT-Image 2", "1K 2K 4K", "2K", _GPT_RATIOS, "16:9",
              "low medium high", "medium", 15),
        _spec("doubao-seedream-4.5", "Seedream 4.5", "2K 4K", "2K", _ALL, None, "", None, 10),
        _spec("doubao-seedream-4.0", "Seedream 4.0", "2K 4K", "2K", _ALL, None, "", None, 10),
        _spec("gemini-3-pro-image-preview", "Nano Banana Pro", "1K 2K 4K", "1K", _ALL, None,
              "", None, 3),
        _spec("gemini-3.1-flash-image-preview", "Nano Banana V2", "512 1K 2K 4K", "1K", _ALL,
              None, "", None, 3),
        _spec("gemini-2.5-flash-image", "Nano Banana", "", None, _ALL, None, "", None, 3),
    )
}  # fmt: skip


def get_model(code: str) -> ModelSpec | None:
    """The catalog entry of ``code``, or ``None`` for a model the SDK does not know."""
    return CATALOG.get(code)


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _shown(value: str) -> str:
    """``repr(value)``, cut short: a 5,000-character size would drown its own error."""
    return repr(value) if len(value) <= 40 else f"{value[:32]!r}… ({len(value)} characters)"


def validate_fields(
    model: str,
    *,
    size: str | None = None,
    aspect_ratio: str | None = None,
    quality: str | None = None,
    image_count: int = 0,
) -> None:
    """Check a request's fields against a known model's table.

    Unknown models pass unchecked. A field the model does not have at all
    (``size`` for Nano Banana) passes too: the platform ignores it.

    Raises:
        RequestValidationError: a value outside the model's table, or too
            many reference images; the message names the value and the
            allowed ones.
    """
    spec = CATALOG.get(model)
    if spec is None:
        return
    if size is not None and spec.sizes and size not in spec.sizes:
        raise RequestValidationError(
            f"size {_shown(size)} is not offered by {model}; choose one of {_choices(spec.sizes)}"
        )
    if aspect_ratio is not None and aspect_ratio not in spec.aspect_ratios:
        raise RequestValidationError(
            f"aspect_ratio {_shown(aspect_ratio)} is not offered by {model}; "
            f"choose one of {_choices(spec.aspect_ratios)}"
        )
    if quality is not None and spec.qualities and quality not in spec.qualities:
        raise RequestValidationError(
            f"quality {_shown(quality)} is not offered by {model}; "
            f"choose one of {_choices(spec.qualities)}"
        )
    if image_count > spec.max_images:
        raise RequestValidationError(
            f"{image_count} reference images given; {model} takes at most {spec.max_images}"
        )


def _ratio(aspect_ratio: str) -> tuple[int, int]:
    if aspect_ratio not in ALL_ASPECT_RATIOS:
        raise RequestValidationError(
            f"aspect_ratio {_shown(aspect_ratio)} is unknown; "
            f"choose one of {_choices(ALL_ASPECT_RATIOS)}"
        )
    w, h = aspect_ratio.split(":")
    return int(w), int(h)


def resolve_pixels(size: str, aspect_ratio: str = "1:1") -> tuple[int, int]:
    """The ``(width, height)`` in pixels of a size tier at an aspect ratio.

    The long side is the tier (``2K`` is 2048 px); the short side follows the
    ratio, rounded to a multiple of 16, as image models work in 16 px blocks.
    This reproduces the platform's documented example,
    ``2K`` + ``16:9`` -> ``2048x1152``.

    Raises:
        RequestValidationError: an unknown tier or ratio.
    """
    try:
        long_side = SIZE_TIERS[size]
    except KeyError:
        raise RequestValidationError(
            f"size {_shown(size)} is not a resolution tier; "
            f"choose one of {_choices(tuple(SIZE_TIERS))}"
        ) from None
    w, h = _ratio(aspect_ratio)
    short = max(
        _SHORT_SIDE_STEP,
        round(long_side * min(w, h) / max(w, h) / _SHORT_SIDE_STEP) * _SHORT_SIDE_STEP,
    )
    return (long_side, short) if w >= h else (short, long_side)


_PIXELS = re.compile(r"^\s*(\d+)\s*[xX\u00d7]\s*(\d+)\s*$")


def parse_pixel_size(value: str) -> tuple[str, str] | None:
    """Map an OpenAI-style ``"WIDTHxHEIGHT"`` to ``(tier, aspect_ratio)``.

    Returns ``None`` when ``value`` is not of that form. Only sizes that
    :func:`resolve_pixels` produces exactly are accepted, so nothing is
    silently changed.

    Raises:
        RequestValidationError: a ``WxH`` that matches no tier and ratio.
    """
    match = _PIXELS.match(value)
    if match is None:
        return None
    # No tier is wider than 5 digits; int() of thousands of digits is refused by Python anyway.
    if len(match[1]) <= 5 and len(match[2]) <= 5:
        width, height = int(match[1]), int(match[2])
        for tier in SIZE_TIERS:
            for ratio in ALL_ASPECT_RATIOS:
                if resolve_pixels(tier, ratio) == (width, height):
                    return tier, ratio
    raise RequestValidationError(
        f"size {_shown(value)} is no tier at a known aspect ratio; use a tier "
        f"({_choices(tuple(SIZE_TIERS))}) with aspect_ratio, or pixels such as 1024x1024, "
        "2048x1152 (2K at 16:9)"
    )
