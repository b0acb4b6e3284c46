"""The platform's rules: which API requests it refuses, and what the others make.

:meth:`Rules.check` takes a request's headers and parsed body and returns
either a :class:`Rejection` (status and message) or the :class:`Job` to
generate: the image's size and colour and how to return it. It checks in
the platform's order: 401, 400 (body), 402, 400 (fields), 409.

The rules are the platform documentation's (``linkai-image-api.zh.txt``) and
the model table is the SDK's own ``CATALOG``. They are checked here again
rather than through the SDK's validation helpers, so that a bug there is
caught by tests against this fake instead of copied into it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import attrs

from .._catalog import ALL_ASPECT_RATIOS, CATALOG, SIZE_TIERS, ModelSpec, resolve_pixels
from ._records import ReferenceImage

__all__ = ["Job", "Rejection", "Rules"]


@attrs.frozen
class Job:
    """An image to generate: its (scaled) pixel size, colour, and response format."""

    width: int
    height: int
    rgb: tuple[int, int, int]
    response_format: str


@attrs.frozen
class Rejection:
    """A refused request: the HTTP status and the error message."""

    status: int
    message: str


@attrs.frozen(kw_only=True)
class Rules:
    """The fake's account and platform settings that decide a request's fate.

    Attributes:
        api_key: the only key accepted in ``Authorization: Bearer <key>``.
        banned_words: lower-case words that get a prompt rejected with 409.
        extra_models: model codes accepted besides the catalog's, unchecked.
        default_response_format: used when a request does not say.
        scale: generated images are the platform's pixel size divided by this.
    """

    api_key: str = attrs.field(repr=False)
    banned_words: frozenset[str]
    extra_models: frozenset[str]
    default_response_format: str
    scale: int

    def check(
        self, headers: Mapping[str, str], parsed: object, images: tuple[ReferenceImage, ...]
    ) -> Job | Rejection:
        """The platform's rules, in its order: 401, 400 (body), 402, 400 (fields), 409.

        Args:
            headers: the request's headers, names lower-cased.
            parsed: the parsed JSON body (anything when it was not a JSON object).
            images: each entry of the body's ``images``, inspected.

        Returns:
            The job to generate, or why the request is refused.
        """
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            scheme, _, key = auth.strip().partition(" ")
            if not auth:
                return Rejection(401, "missing API key; send 'Authorization: Bearer <API key>'")
            if scheme.lower() != "bearer" or key.strip() != self.api_key:
                return Rejection(401, "invalid API key")
        if not isinstance(parsed, dict):
            return Rejection(400, "the request body must be a JSON object")
        model = parsed.get("model")
        if not isinstance(model, str) or not model.strip():
            return Rejection(400, "model is required: a model code such as 'gpt-image-2'")
        prompt = parsed.get("prompt")
        if not isinstance(prompt, str):
            return Rejection(400, "prompt is required and must be a string")
        if not prompt.strip():
            return Rejection(400, "prompt must not be empty")
        spec = CATALOG.get(model)
        if spec is None and model not in self.extra_models:
            return Rejection(402, f"model does not exist or the account may not use it: {model}")

        raw_images = parsed.get("images")
        if raw_images is not None and not isinstance(raw_images, list):
            return Rejection(400, "images must be a list of strings")
        if spec is not None and len(images) > spec.max_images:
            return Rejection(
                400,
                f"{len(images)} reference images given; {model} takes at most {spec.max_images}",
            )
        for index, image in enumerate(images):
            if image.error is not None:
                return Rejection(400, f"images[{index}] {image.error}")

        job = self._job(spec, parsed, prompt)
        if isinstance(job, Rejection):
            return job
        lowered = prompt.lower()
        if any(word in lowered for word in self.banned_words):
            return Rejection(409, "content moderation rejected the prompt")
        return job

    def _job(
        self, spec: ModelSpec | None, fields: Mapping[str, object], prompt: str
    ) -> Job | Rejection:
        size = fields.get("size")
        ratio = fields.get("aspect_ratio")
        if spec is None:
            # An unknown model's fields pass unchecked.
            size = size if isinstance(size, str) and size in SIZE_TIERS else "1K"
            ratio = ratio if isinstance(ratio, str) and ratio in ALL_ASPECT_RATIOS else "1:1"
        else:
            tables = (
                ("size", spec.sizes),
                ("aspect_ratio", spec.aspect_ratios),
                ("quality", spec.qualities),
            )
            for name, offered in tables:
                value = fields.get(name)
                # A field the model does not have at all is ignored, as the
                # platform says (size and quality for Nano Banana).
                if value is None or not offered:
                    continue
                if not isinstance(value, str):
                    return Rejection(400, f"{name} must be a string, not {value!r}")
                if value not in offered:
                    return Rejection(
                        400,
                        f"{name} {value!r} is not offered by {spec.code}; "
                        f"choose one of {_choices(offered)}",
                    )
            if size is None or not spec.sizes:
                size = spec.default_size or "1K"
            if ratio is None or not spec.aspect_ratios:
                ratio = spec.default_aspect_ratio or "1:1"
        response_format = fields.get("response_format")
        if response_format is None:
            response_format = self.default_response_format
        if response_format not in ("url", "b64_json"):
            return Rejection(
                400, f"response_format {response_format!r} is not supported; use 'url'"
            )
        width, height = _scaled_pixels(str(size), str(ratio), self.scale)
        return Job(
            width=width,
            height=height,
            rgb=_colour(prompt),
            response_format=str(response_format),
        )


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@functools.lru_cache(maxsize=256)
def _scaled_pixels(size: str, aspect_ratio: str, scale: int) -> tuple[int, int]:
    width, height = resolve_pixels(size, aspect_ratio)
    return max(1, width // scale), max(1, height // scale)


@functools.lru_cache(maxsize=4096)
def _colour(prompt: str) -> tuple[int, int, int]:
    r, g, b = hashlib.blake2b(prompt.encode(), digest_size=3).digest()
    return r, g, b
