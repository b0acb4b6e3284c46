"""The data that flows through the SDK: requests in, responses and batch items out."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, Union, overload

import attrs

if sys.version_info >= (3, 13):
    from typing import TypeVar
elif TYPE_CHECKING:  # a TypeVar default (PEP 696): type checkers read the backport's
    from typing_extensions import TypeVar
else:
    from typing import TypeVar as _TypeVar

    def TypeVar(name: str, *, default: object = None, **kwargs: Any) -> Any:
        """``typing.TypeVar`` without the PEP 696 default, which only type checkers read.

        Importing typing_extensions for it would cost every ``import linkai_images``
        about 2 ms before Python 3.13.
        """
        return _TypeVar(name, **kwargs)


from ._display import response_html, results_html
from ._exceptions import RequestValidationError
from ._failures import FailureKind

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "BatchItem",
    "BatchResults",
    "BinaryReader",
    "BlockingImageStore",
    "GeneratedImage",
    "ImageInput",
    "ImageRequest",
    "ImageResponse",
    "ImageStore",
    "RequestLike",
    "bind",
    "bind_item",
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
    """Where an image of ``AsyncImageClient`` reads and saves itself: awaitable calls.

    The client that made the image injects its downloader; this module never
    imports one, so the data layer does no I/O of its own.
    """

    async def read(
        self, image: GeneratedImage[Any], *, text: Mapping[str, str] | None = None
    ) -> bytes: ...

    async def save(
        self,
        image: GeneratedImage[Any],
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path: ...

    async def save_all(
        self, images: Sequence[GeneratedImage[Any]], directory: str | os.PathLike[str]
    ) -> list[Path]: ...


class BlockingImageStore(Protocol):
    """Where an image of ``ImageClient`` reads and saves itself: blocking calls."""

    def read(
        self, image: GeneratedImage[Any], *, text: Mapping[str, str] | None = None
    ) -> bytes: ...

    def save(
        self,
        image: GeneratedImage[Any],
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path: ...

    def save_all(
        self, images: Sequence[GeneratedImage[Any]], directory: str | os.PathLike[str]
    ) -> list[Path]: ...


#: The kind of store a result is bound to, which decides whether its ``read()``,
#: ``save()`` and ``save_all()`` are awaitable (``ImageStore``, the default: a bare
#: ``ImageResponse`` is an ``AsyncImageClient`` one) or blocking (``BlockingImageStore``).
StoreT = TypeVar(
    "StoreT", bound="ImageStore | BlockingImageStore", default=ImageStore, covariant=True
)
OtherStoreT = TypeVar("OtherStoreT", bound="ImageStore | BlockingImageStore")

_default_store: Callable[[], ImageStore] | None = None


def set_default_store(factory: Callable[[], ImageStore]) -> None:
    """Set the store of images that no client made (``GeneratedImage(url=...)``).

    ``linkai_images/__init__.py`` wires in the output layer's standalone
    downloader, so the data layer stays below it.
    """
    global _default_store
    _default_store = factory


def _the_default_store() -> ImageStore:
    if _default_store is None:  # pragma: no cover - the package's __init__ sets it
        raise RuntimeError("no image store: import linkai_images to wire one in")
    return _default_store()


class _Bound(Generic[StoreT]):
    """The store slot of a result: set by ``bind``, never an attrs field.

    So ``attrs.asdict``, ``==``, ``repr`` and pickling see plain data only.
    """

    __slots__ = ("_store",)
    _store: StoreT


def _b64_repr(value: str | None) -> str:
    # Megabytes of base64 in a repr would drown a notebook or a log line.
    return "None" if value is None else f"<{len(value)} base64 chars>"


@attrs.frozen(kw_only=True, init=False)
class GeneratedImage(_Bound[StoreT]):
    """One generated image.

    From ``AsyncImageClient``, ``read()`` and ``save()`` are awaitable; from
    ``ImageClient`` they block (the type, ``GeneratedImage[BlockingImageStore]``,
    says which). An image made by hand reads and saves like an async one.

    Attributes:
        url: the CDN address (long-lived), or ``None`` when the server sent
            the bytes inline.
        b64_json: the image as base64, when the server sent it inline.
        revised_prompt: the prompt the model actually used, when sent.
    """

    url: str | None = None
    b64_json: str | None = attrs.field(default=None, repr=_b64_repr)
    revised_prompt: str | None = None

    def __init__(
        self,
        *,
        url: str | None = None,
        b64_json: str | None = None,
        revised_prompt: str | None = None,
        store: StoreT | None = None,
    ) -> None:
        self.__attrs_init__(url=url, b64_json=b64_json, revised_prompt=revised_prompt)
        if store is not None:
            object.__setattr__(self, "_store", store)

    def _store_or_default(self) -> StoreT | ImageStore:
        try:
            return self._store
        except AttributeError:
            return _the_default_store()

    @overload
    def read(
        self: GeneratedImage[BlockingImageStore], *, provenance: Mapping[str, str] | None = None
    ) -> bytes: ...
    @overload
    def read(
        self: GeneratedImage[ImageStore], *, provenance: Mapping[str, str] | None = None
    ) -> Coroutine[Any, Any, bytes]: ...
    def read(
        self, *, provenance: Mapping[str, str] | None = None
    ) -> bytes | Coroutine[Any, Any, bytes]:
        """The image's bytes: decoded from ``b64_json``, or downloaded from ``url``.

        The bytes are exactly those served, unless ``provenance`` is given.
        The download never carries the API key. Awaitable from
        ``AsyncImageClient``, blocking from ``ImageClient``.

        Args:
            provenance: text to embed in a PNG as iTXt chunks
                (``{"Description": prompt, ...}``; keywords of 1-79 Latin-1
                characters, any UTF-8 text); the pixels are not touched, and
                other formats are returned as served.

        Raises:
            DownloadError: the CDN failed or sent too much.
            ValueError: a provenance keyword the PNG format does not allow.
        """
        return self._store_or_default().read(self, text=provenance)

    @overload
    def save(
        self: GeneratedImage[BlockingImageStore],
        path: str | os.PathLike[str],
        *,
        provenance: Mapping[str, str] | None = None,
    ) -> Path: ...
    @overload
    def save(
        self: GeneratedImage[ImageStore],
        path: str | os.PathLike[str],
        *,
        provenance: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, Path]: ...
    def save(
        self, path: str | os.PathLike[str], *, provenance: Mapping[str, str] | None = None
    ) -> Path | Coroutine[Any, Any, Path]:
        """Write the image to ``path`` atomically and return where it went.

        A directory (one that exists, or a path ending in ``/``) gets a file
        named after the URL (its extension from the content type). A crash
        never leaves a half-written file. The file holds exactly the bytes
        served, unless ``provenance`` is given. Awaitable from
        ``AsyncImageClient``, blocking from ``ImageClient``.

        Args:
            path: a file, or a directory to put it in.
            provenance: text to embed in a PNG as iTXt chunks, as for ``read``.

        Raises:
            DownloadError: the CDN failed or sent too much.
            ValueError: a provenance keyword the PNG format does not allow.
        """
        return self._store_or_default().save(self, path, text=provenance)

    def to_dict(self) -> dict[str, Any]:
        """The image as JSON-ready data: ``url``, ``b64_json``, ``revised_prompt``."""
        return {"url": self.url, "b64_json": self.b64_json, "revised_prompt": self.revised_prompt}


@attrs.frozen(kw_only=True)
class ImageResponse(_Bound[StoreT]):
    """The result of one generation call: plain data, with ``to_dict``/``from_dict``.

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

    data: tuple[GeneratedImage[StoreT], ...]
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

    def _store_or_default(self) -> StoreT | ImageStore:
        try:
            return self._store
        except AttributeError:
            # Made by a client: its images carry the store; made by hand: the default.
            return self.data[0]._store_or_default() if self.data else _the_default_store()

    @overload
    def save_all(
        self: ImageResponse[BlockingImageStore], directory: str | os.PathLike[str]
    ) -> list[Path]: ...
    @overload
    def save_all(
        self: ImageResponse[ImageStore], directory: str | os.PathLike[str]
    ) -> Coroutine[Any, Any, list[Path]]: ...
    def save_all(
        self, directory: str | os.PathLike[str]
    ) -> list[Path] | Coroutine[Any, Any, list[Path]]:
        """Save every image into ``directory`` (created if missing), in order.

        Awaitable from ``AsyncImageClient``, blocking from ``ImageClient``.

        Returns:
            The paths written, aligned with ``data``.

        Raises:
            DownloadError: an image could not be fetched.
        """
        return self._store_or_default().save_all(self.data, directory)

    def to_dict(self) -> dict[str, Any]:
        """The response as JSON-ready data (``json.dumps`` takes it as it is).

        ``ImageResponse.from_dict`` reads it back.
        """
        return {
            "data": [image.to_dict() for image in self.data],
            "created": self.created,
            "model": self.model,
            "attempts": self.attempts,
            "elapsed": self.elapsed,
            "request_id": self.request_id,
            "rate_limit_headers": dict(self.rate_limit_headers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageResponse:
        """An ``ImageResponse`` from what ``to_dict`` gave (after a JSON round trip too).

        Its images read and save like those of ``AsyncImageClient`` (through
        a short-lived pool of their own).

        Raises:
            ValueError: a field is missing or of the wrong type (the message
                names it).
        """
        images = data.get("data")
        if not isinstance(images, Sequence) or isinstance(images, str):
            # Malformed data, as json.loads calls it: a ValueError, not a TypeError.
            raise ValueError(f"'data' must be a list of images, got {images!r:.80}")  # noqa: TRY004
        return ImageResponse(
            data=tuple(_image_from_dict(i, item) for i, item in enumerate(images)),
            created=_typed(data, "created", int, None),
            model=_typed(data, "model", str, None),
            attempts=_typed(data, "attempts", int, 1),
            elapsed=float(_typed(data, "elapsed", (int, float), 0.0)),
            request_id=_typed(data, "request_id", str, None),
            rate_limit_headers=_headers(data.get("rate_limit_headers")),
        )

    def _repr_html_(self) -> str:
        return response_html(self)


def _typed(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key, default)
    if value is default or (isinstance(value, kind) and not isinstance(value, bool)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key!r} must be a finite number, got {value!r}")
        return value
    raise ValueError(f"{key!r} must be {_kind_name(kind)} or absent, got {value!r:.80}")


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"'rate_limit_headers' must map names to strings, got {value!r:.80}")
    return dict(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("a number" if k is float else f"a {k.__name__}" for k in kinds)


def _image_from_dict(index: int, item: object) -> GeneratedImage:
    if not isinstance(item, Mapping):
        raise ValueError(f"data[{index}] must be an object, got {item!r:.80}")  # noqa: TRY004
    try:
        return GeneratedImage(
            url=_typed(item, "url", str, None),
            b64_json=_typed(item, "b64_json", str, None),
            revised_prompt=_typed(item, "revised_prompt", str, None),
        )
    except ValueError as exc:
        raise ValueError(f"data[{index}]: {exc}") from None


@attrs.frozen(kw_only=True)
class BatchItem(Generic[StoreT]):
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
    response: ImageResponse[StoreT] | None = None
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

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data: ``index``, ``request``, ``response``, ``error``.

        ``response`` is ``ImageResponse.to_dict()`` (or ``None``); ``error`` is
        ``{"type", "message", "status_code"}`` (or ``None``). Reference images
        given as text (URLs, data URIs, paths) are kept; those given as data
        (bytes, file objects, PIL images) are described, not embedded.
        """
        return {
            "index": self.index,
            "request": _request_dict(self.request),
            "response": None if self.response is None else self.response.to_dict(),
            "error": None if self.error is None else _error_dict(self.error),
        }


def _request_dict(request: ImageRequest) -> dict[str, Any]:
    fields = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    fields["images"] = [_image_input_text(item) for item in request.images]
    fields["extra_body"] = None if request.extra_body is None else dict(request.extra_body)
    return fields


def _image_input_text(item: ImageInput) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<{len(item)} bytes>"
    return f"<{type(item).__name__}>"


def _error_dict(error: BaseException) -> dict[str, Any]:
    status = getattr(error, "status_code", None)
    return {
        "type": type(error).__name__,
        "message": str(error),
        "status_code": status if isinstance(status, int) else None,
    }


def bind(response: ImageResponse[Any], store: OtherStoreT) -> ImageResponse[OtherStoreT]:
    """A copy of ``response`` whose images read and save through ``store``.

    The blocking client binds its blocking store this way; the data is shared.
    """
    images = []
    for image in response.data:
        copy: GeneratedImage[OtherStoreT] = GeneratedImage(
            url=image.url, b64_json=image.b64_json, revised_prompt=image.revised_prompt
        )
        object.__setattr__(copy, "_store", store)
        images.append(copy)
    bound: ImageResponse[OtherStoreT] = attrs.evolve(response, data=tuple(images))
    object.__setattr__(bound, "_store", store)
    return bound


def bind_item(item: BatchItem[Any], store: OtherStoreT) -> BatchItem[OtherStoreT]:
    """A copy of ``item`` with its response bound to ``store`` (see ``bind``)."""
    response = None if item.response is None else bind(item.response, store)
    return BatchItem(
        index=item.index,
        request=item.request,
        response=response,
        error=item.error,
        fingerprint=item.fingerprint,
    )


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
