"""The data that flows through the SDK: requests in, responses and batch items out."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union

import attrs

from ._display import response_html, results_html
from ._exceptions import RequestValidationError
from ._failures import FailureKind

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "BatchItem",
    "BatchResults",
    "BinaryReader",
    "GeneratedImage",
    "ImageInput",
    "ImageRequest",
    "ImageResponse",
    "ImageStore",
    "RequestLike",
    "set_default_store",
]


class BinaryReader(Protocol):
    """A binary file object: ``read(size)`` returns bytes (``open(path, "rb")``, ``BytesIO``)."""

    def read(self, size: int = ..., /) -> bytes: ...


#: One reference image: an http(s) URL or data URI (``str``), a local path
#: (``str`` or ``os.PathLike``), raw bytes, a binary file object or a PIL image.
ImageInput = Union[
    str, os.PathLike[str], bytes, bytearray, memoryview, BinaryReader, "PIL.Image.Image"
]

_REQUEST_FIELDS = ("model", "prompt", "images", "size", "aspect_ratio", "quality",
                   "response_format", "extra_body")  # fmt: skip


def _to_tuple(value: Sequence[Any] | Any | None) -> tuple[Any, ...]:
    # A single item (a path, bytes, a URL string) is a list of one: the most common slip.
    if value is None:
        return ()
    if isinstance(value, (str, bytes, bytearray, memoryview, os.PathLike)):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(value)
    return (value,)


@attrs.frozen(kw_only=True)
class ImageRequest:
    """One generation request, as given to ``generate_many`` / ``as_completed``.

    ``None`` fields are left out of the HTTP body: the platform then uses the
    model's default. A batch accepts plain prompt strings and dicts of these
    fields too.

    Attributes:
        prompt: what to draw; with ``images``, how to change them.
        model: the model code; ``None`` means the client's ``default_model``.
        images: reference images (URLs, data URIs, paths, bytes, file
            objects, PIL images). A single item is taken as a list of one.
        size: resolution tier (``1K``, ``2K``, ...) or OpenAI-style pixels
            (``2048x1152``) that map exactly to a tier and ratio.
        aspect_ratio: ``16:9`` and the like.
        quality: a quality value of the model (``high`` for gpt-image-2).
        response_format: ``url`` (the platform's only value today) or
            ``b64_json`` where a server offers it.
        extra_body: more JSON fields, sent as given (for fields the SDK does
            not know yet).
    """

    prompt: str
    model: str | None = None
    images: tuple[ImageInput, ...] = attrs.field(default=(), converter=_to_tuple)
    size: str | None = None
    aspect_ratio: str | None = None
    quality: str | None = None
    response_format: str | None = None
    extra_body: Mapping[str, Any] | None = None

    @classmethod
    def coerce(cls, value: RequestLike) -> ImageRequest:
        """An ``ImageRequest`` from a request, a dict of its fields, or a prompt.

        Raises:
            RequestValidationError: a dict with unknown or missing fields, or
                a value of another type.
        """
        if isinstance(value, ImageRequest):
            return value
        if isinstance(value, str):
            return cls(prompt=value)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_REQUEST_FIELDS))
            if unknown:
                raise RequestValidationError(
                    f"unknown request field(s) {', '.join(map(repr, unknown))}; "
                    f"allowed: {', '.join(_REQUEST_FIELDS)}"
                )
            if "prompt" not in value:
                raise RequestValidationError(f"request {dict(value)!r} has no 'prompt'")
            return cls(**value)
        raise RequestValidationError(
            f"a request must be an ImageRequest, a dict or a prompt string, "
            f"not {type(value).__name__}"
        )


RequestLike = ImageRequest | Mapping[str, Any] | str


class ImageStore(Protocol):
    """What a ``GeneratedImage`` needs to fetch and save itself.

    The client that made the image injects its downloader; this module never
    imports one, so the data layer does no I/O of its own.
    """

    async def read(
        self, image: GeneratedImage, *, text: Mapping[str, str] | None = None
    ) -> bytes: ...

    async def save(
        self,
        image: GeneratedImage,
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path: ...


_default_store: Callable[[], ImageStore] | None = None


def set_default_store(factory: Callable[[], ImageStore]) -> None:
    """Set the store of images that no client made (``GeneratedImage(url=...)``).

    ``linkai_images/__init__.py`` wires in the output layer's standalone
    downloader, so the data layer stays below it.
    """
    global _default_store
    _default_store = factory


def _b64_repr(value: str | None) -> str:
    # Megabytes of base64 in a repr would drown a notebook or a log line.
    return "None" if value is None else f"<{len(value)} base64 chars>"


@attrs.frozen(kw_only=True)
class GeneratedImage:
    """One generated image.

    Attributes:
        url: the CDN address (long-lived), or ``None`` when the server sent
            the bytes inline.
        b64_json: the image as base64, when the server sent it inline.
        revised_prompt: the prompt the model actually used, when sent.
    """

    url: str | None = None
    b64_json: str | None = attrs.field(default=None, repr=_b64_repr)
    revised_prompt: str | None = None
    _store: ImageStore | None = attrs.field(default=None, repr=False, eq=False, alias="store")

    async def read(self, *, provenance: Mapping[str, str] | None = None) -> bytes:
        """The image's bytes: decoded from ``b64_json``, or downloaded from ``url``.

        The bytes are exactly those served, unless ``provenance`` is given.
        The download never carries the API key.

        Args:
            provenance: text to embed in a PNG as iTXt chunks
                (``{"Description": prompt, ...}``; keywords of 1-79 Latin-1
                characters, any UTF-8 text); the pixels are not touched, and
                other formats are returned as served.

        Raises:
            DownloadError: the CDN failed or sent too much.
            ValueError: a provenance keyword the PNG format does not allow.
        """
        return await self._require_store().read(self, text=provenance)

    async def save(
        self, path: str | os.PathLike[str], *, provenance: Mapping[str, str] | None = None
    ) -> Path:
        """Write the image to ``path`` atomically and return where it went.

        A directory gets a file named after the URL (its extension from the
        content type). A crash never leaves a half-written file. The file
        holds exactly the bytes served, unless ``provenance`` is given.

        Args:
            path: a file, or a directory to put it in.
            provenance: text to embed in a PNG as iTXt chunks, as for
                ``read``.

        Raises:
            DownloadError: the CDN failed or sent too much.
            ValueError: a provenance keyword the PNG format does not allow.
        """
        return await self._require_store().save(self, path, text=provenance)

    def _require_store(self) -> ImageStore:
        if self._store is not None:
            return self._store
        if _default_store is None:  # pragma: no cover - the package's __init__ sets it
            raise RuntimeError("no image store: import linkai_images to wire one in")
        return _default_store()


@attrs.frozen(kw_only=True)
class ImageResponse:
    """The result of one generation call.

    Attributes:
        data: the generated images.
        created: the server's Unix timestamp, when sent.
        model: the model code the request named.
        attempts: HTTP attempts made, retries included (1 = no retry).
        elapsed: seconds from the first attempt to the answer, waits included.
        request_id: the server's request id header, when sent.
        rate_limit_headers: the rate-limit headers of the answer, names in
            lower case (``x-ratelimit-*``, ``ratelimit*``, ``retry-after*``),
            as sent; empty when there were none.
    """

    data: tuple[GeneratedImage, ...]
    created: int | None = None
    model: str | None = None
    attempts: int = 1
    elapsed: float = 0.0
    request_id: str | None = None
    rate_limit_headers: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def urls(self) -> list[str]:
        """The URLs of the images that have one."""
        return [image.url for image in self.data if image.url is not None]

    async def save_all(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Save every image into ``directory`` (created if missing), in order.

        Returns:
            The paths written, aligned with ``data``.
        """
        import anyio

        await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
        paths = []
        for image in self.data:
            paths.append(await image.save(directory))
        return paths

    def _repr_html_(self) -> str:
        return response_html(self)


@attrs.frozen(kw_only=True)
class BatchItem:
    """One settled request of ``as_completed``: exactly one of ``response``, ``error`` is set.

    Attributes:
        index: the request's position in the input (from 0).
        request: the request, as an ``ImageRequest``.
        response: the result, on success.
        error: the exception, on failure.
        fingerprint: the request's key in the checkpoint (a sha256 hex
            string), or ``None`` without a checkpoint or when it has none.
    """

    index: int
    request: ImageRequest
    response: ImageResponse | None = None
    error: BaseException | None = None
    fingerprint: str | None = attrs.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None

    @property
    def uncertain(self) -> bool:
        """Whether the request may have been generated and billed without a result here.

        True for an ``UncertainRequestError`` (an earlier run sent it and
        recorded no result, so it was not sent again) and for a failure
        after the request was sent (a lost answer, a 200 with a broken body).
        """
        return self.failure_kind is FailureKind.UNCERTAIN

    @property
    def failure_kind(self) -> FailureKind | None:
        """What the failure needs (``FailureKind.of(error)``); ``None`` on success."""
        return None if self.error is None else FailureKind.of(self.error)


class BatchResults(list):  # type: ignore[type-arg]
    """The aligned results of ``generate_many``: a plain ``list`` that also renders.

    Each entry is an ``ImageResponse``, or the exception its request ended with
    (with ``return_exceptions=True`` or in ``BatchError.results``). In Jupyter
    the list shows as a grid of thumbnails, failures marked.

    Attributes:
        requests: the checked requests, aligned with the results (model
            filled in); ``save_results`` takes the prompts from here.
    """

    requests: tuple[ImageRequest, ...] = ()

    @property
    def responses(self) -> list[ImageResponse]:
        """The successful results, in input order."""
        return [r for r in self if isinstance(r, ImageResponse)]

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions, in input order."""
        return [r for r in self if isinstance(r, BaseException)]

    def _repr_html_(self) -> str:
        return results_html(self, ImageResponse)
