"""Fetching generated images: read them, save them atomically, never leak the key.

Downloads go through the client's pool but never carry a credential: the
generation call adds the ``Authorization`` header per request, and a download
request removes any the pool's defaults might hold. The CDN is another
origin, so a key sent there would be a key given away.
"""

from __future__ import annotations

import binascii
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from .._exceptions import APIConnectionError, APIStatusError, DownloadError, status_error_class
from .._http.endpoint import parse_error_body
from .._http.transport import DOWNLOAD_CONNECTIONS
from .._inputs.b64 import b64decode_sliced
from .._retry import RetryPolicy, call_with_retries
from .pngtext import add_png_text, stamp_stream

if TYPE_CHECKING:
    from .._models import GeneratedImage

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DOWNLOAD_RETRY_POLICY",
    "Downloader",
    "remove_stale_parts",
    "safe_filename",
    "standalone_store",
]

#: The largest image a download accepts (a 4K PNG is ~30 MB).
DEFAULT_MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
_MAX_REDIRECTS = 5
_CHUNK = 256 * 1024
#: Downloads cost nothing, so every transient failure is retried.
DOWNLOAD_RETRY_POLICY = RetryPolicy(
    max_attempts=3,
    timeout=120.0,
    wait_initial=0.5,
    wait_max=5.0,
    retry_statuses=frozenset({408, 425, 429, 500, 502, 503, 504}),
    retry_unsent_only=False,
)
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: The temporary file a save streams into: ``.NAME.<8 hex>.part`` beside ``NAME``.
_PART = re.compile(r"\.(.+)\.[0-9a-f]{8}\.part")


def safe_filename(url: str, content_type: str | None = None) -> str:
    """A file name for an image URL: its last path segment, made safe, with an extension.

    The extension comes from the content type when there is one (a CDN may
    serve ``/abc`` as ``image/png``).
    """
    last = httpx.URL(url).path.rsplit("/", 1)[-1] if url else ""
    stem, dot, ext = last.rpartition(".")
    if not dot:
        stem, ext = last, ""
    stem = _UNSAFE.sub("_", stem).strip("._")[:100] or "image"
    suffix = _extension(content_type) or (f".{_UNSAFE.sub('', ext)[:8]}" if ext else ".png")
    return stem + suffix


def _extension(content_type: str | None) -> str | None:
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime)


async def _decode_inline(image: GeneratedImage) -> bytes:
    assert image.b64_json is not None
    try:
        # In slices: one decode of tens of MB would stall the loop from the thread.
        return await anyio.to_thread.run_sync(b64decode_sliced, image.b64_json)
    except (binascii.Error, ValueError) as exc:
        raise DownloadError(f"the image's b64_json is not valid base64: {exc}", url="") from exc


class Downloader:
    """Reads and saves ``GeneratedImage`` s through one httpx client, with no credential.

    Args:
        http: the pool to use (the client's own).
        max_bytes: the largest image accepted.
        concurrency: downloads in flight at once.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        concurrency: int = DOWNLOAD_CONNECTIONS,
    ) -> None:
        self._http = http
        self.max_bytes = max_bytes
        self._limiter = anyio.Semaphore(concurrency)

    async def read(self, image: GeneratedImage, *, text: Mapping[str, str] | None = None) -> bytes:
        """The image's bytes (decoded inline data, or downloaded).

        Args:
            image: the image.
            text: PNG text chunks to add (provenance); ``None`` gives the
                bytes exactly as served.
        """
        if image.b64_json:
            data = await _decode_inline(image)
            return await anyio.to_thread.run_sync(add_png_text, data, text) if text else data
        chunks = []
        async with self._open(self._url_of(image)) as (_, stream):
            body = stamp_stream(stream, text) if text else stream
            async with aclosing(body):
                async for chunk in body:
                    chunks.append(chunk)
        return b"".join(chunks)

    async def save(
        self,
        image: GeneratedImage,
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path:
        """Write the image to ``path`` (a file, or a directory to put it in), atomically.

        Args:
            image: the image.
            path: a file, or a directory to put it in.
            text: PNG text chunks to add as the file is written (provenance);
                ``None`` writes the bytes exactly as served.
        """
        target = Path(path)
        if image.b64_json:
            data = await _decode_inline(image)
            dest = await _destination(target, image.url or "image.png", _sniff_type(data))
            await _atomic_write(dest, stamp_stream(_single(data), text) if text else _single(data))
            return dest
        url = self._url_of(image)
        async with self._open(url) as (content_type, stream):
            dest = await _destination(target, url, content_type)
            await _atomic_write(dest, stamp_stream(stream, text) if text else stream)
        return dest

    async def save_all(
        self, images: Sequence[GeneratedImage], directory: str | os.PathLike[str]
    ) -> list[Path]:
        """Save each image into ``directory`` (created if missing), in order."""
        await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
        return [await self.save(image, directory) for image in images]

    @staticmethod
    def _url_of(image: GeneratedImage) -> str:
        if not image.url:
            raise DownloadError("the image has neither a url nor b64_json", url="")
        return image.url

    @asynccontextmanager
    async def _open(
        self, url: str
    ) -> AsyncIterator[tuple[str | None, AsyncGenerator[bytes, None]]]:
        """Open a download: follow redirects to http(s) only, retry transient failures."""
        async with self._limiter:
            try:
                response, _ = await call_with_retries(lambda: self._get(url), DOWNLOAD_RETRY_POLICY)
            except (APIStatusError, APIConnectionError) as exc:
                raise DownloadError(
                    f"downloading {url} failed after {exc.attempts} attempt(s): {exc}",
                    url=url,
                    status_code=getattr(exc, "status_code", None),
                ) from exc
            try:
                yield response.headers.get("content-type"), self._capped(response, url)
            finally:
                await response.aclose()

    async def _get(self, url: str) -> httpx.Response:
        current = url
        for _ in range(_MAX_REDIRECTS + 1):
            request = self._http.build_request("GET", current)
            request.headers.pop("Authorization", None)
            request.headers.pop("Proxy-Authorization", None)
            try:
                response = await self._http.send(request, stream=True, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise APIConnectionError(
                    f"{type(exc).__name__}: {exc}", request=request, request_sent=True
                ) from exc
            if response.is_redirect and "location" in response.headers:
                await response.aclose()
                nxt = response.url.join(response.headers["location"])
                if nxt.scheme not in ("http", "https"):
                    raise DownloadError(
                        f"{url} redirected to a non-http(s) URL {str(nxt)!r}; refused", url=url
                    )
                current = str(nxt)
                continue
            if response.status_code >= 400:
                content = await response.aread()
                await response.aclose()
                parsed = parse_error_body(
                    response.status_code, content, response.headers.get("content-type", "")
                )
                raise status_error_class(response.status_code)(parsed.message, response=response)
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                await response.aclose()
                raise DownloadError(
                    f"{url} is {int(length)} bytes, over the cap of {self.max_bytes}", url=url
                )
            return response
        raise DownloadError(f"{url} redirected more than {_MAX_REDIRECTS} times", url=url)

    async def _capped(self, response: httpx.Response, url: str) -> AsyncGenerator[bytes, None]:
        received = 0
        try:
            # httpx types aiter_bytes as an AsyncIterator; it is an async generator.
            async with aclosing(response.aiter_bytes(_CHUNK)) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise DownloadError(
                            f"{url} sent more than the cap of {self.max_bytes} bytes", url=url
                        )
                    yield chunk
        except httpx.HTTPError as exc:
            raise DownloadError(f"downloading {url} broke off: {exc}", url=url) from exc


def _sniff_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


async def _single(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _destination(target: Path, url: str, content_type: str | None) -> Path:
    if await anyio.Path(target).is_dir() or str(target).endswith(os.sep):
        await anyio.Path(target).mkdir(parents=True, exist_ok=True)
        return target / safe_filename(url, content_type)
    await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
    return target


async def _atomic_write(dest: Path, chunks: AsyncGenerator[bytes, None]) -> None:
    """Stream into a hidden temporary file beside ``dest``, then rename it into place."""
    temp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")  # see _PART
    try:
        async with await anyio.open_file(temp, "wb") as handle, aclosing(chunks):
            async for chunk in chunks:
                await handle.write(chunk)
        await anyio.to_thread.run_sync(os.replace, temp, dest)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.Path(temp).unlink(missing_ok=True)
        raise


async def remove_stale_parts(
    directory: str | os.PathLike[str], owned: Callable[[str], bool] | None = None
) -> int:
    """Delete the temporary files that saves killed mid-download left in ``directory``.

    Only names a save writes (``.NAME.<8 hex>.part``) are touched, and only
    directly in ``directory``. Call it while nothing else saves those names
    (the command line holds the checkpoint's lock).

    Args:
        directory: the output directory.
        owned: given ``NAME`` (the file the save was writing), whether it is
            the caller's to clean; default all. Runs sharing a directory
            (shards) each clean only their own names.

    Returns:
        How many files were removed.
    """

    def remove() -> int:
        removed = 0
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            match = _PART.fullmatch(entry.name)
            if match is None or (owned is not None and not owned(match.group(1))):
                continue
            if entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    return await anyio.to_thread.run_sync(remove)


class _StandaloneStore:
    """For images made outside a client: a short-lived pool per call."""

    async def read(self, image: GeneratedImage, *, text: Mapping[str, str] | None = None) -> bytes:
        async with httpx.AsyncClient() as http:
            return await Downloader(http).read(image, text=text)

    async def save(
        self,
        image: GeneratedImage,
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path:
        async with httpx.AsyncClient() as http:
            return await Downloader(http).save(image, path, text=text)

    async def save_all(
        self, images: Sequence[GeneratedImage], directory: str | os.PathLike[str]
    ) -> list[Path]:
        async with httpx.AsyncClient() as http:
            return await Downloader(http).save_all(images, directory)


def standalone_store() -> _StandaloneStore:
    """The store of a ``GeneratedImage`` that no client made."""
    return _StandaloneStore()
