"""Downloads: no credential ever leaves, redirects and size caps, retries, atomic saves."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from linkai_images import (
    AsyncImageClient,
    DownloadError,
    GeneratedImage,
    ImageResponse,
    save_results,
)
from linkai_images._outputs.download import Downloader, safe_filename
from linkai_images.testing import DEFAULT_API_KEY, FakeLinkAI, FakeServer, make_png

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]

PNG = make_png(4, 3)


def downloader(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> Downloader:
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(handler), headers={"Authorization": "Bearer leaked"}
    )
    return Downloader(http, **kw)  # type: ignore[arg-type]


def image(url: str = "https://cdn.test/u/abc.png") -> GeneratedImage:
    return GeneratedImage(url=url)


async def test_cdn_never_receives_the_api_key(
    linkai_server: FakeServer, linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Through the real client and loopback CDN: no Authorization header reaches the CDN."""
    async with AsyncImageClient(DEFAULT_API_KEY, base_url=linkai_server.base_url) as client:
        response = await client.generate("a fox", model="gpt-image-2")
        await response.data[0].read()
        await response.save_all(tmp_path)
    assert 2 == len(linkai_fake.cdn_requests)
    for request in linkai_fake.cdn_requests:
        assert "authorization" not in request.headers
        assert DEFAULT_API_KEY not in str(dict(request.headers))


async def test_pool_default_credentials_are_stripped_too() -> None:
    """Even a pool whose defaults hold an Authorization header sends none to the CDN."""
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})

    assert PNG == await downloader(handler).read(image())
    assert "authorization" not in seen[0]


async def test_redirects_are_followed_to_http_only() -> None:
    """An http(s) redirect is followed; one to another scheme is refused."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/u/abc.png":
            return httpx.Response(302, headers={"location": "https://cdn2.test/real.png"})
        if request.url.host == "cdn2.test":
            return httpx.Response(200, content=PNG)
        return httpx.Response(302, headers={"location": "file:///etc/passwd"})

    assert PNG == await downloader(handler).read(image())
    with pytest.raises(DownloadError, match="non-http"):
        await downloader(handler).read(image("https://cdn.test/evil.png"))


async def test_size_cap_by_header_and_by_stream() -> None:
    """A declared or actual body over the cap is refused with both sizes named."""

    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 100)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 20

    def streamed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    with pytest.raises(DownloadError, match="100 bytes, over the cap of 50"):
        await downloader(declared, max_bytes=50).read(image())
    with pytest.raises(DownloadError, match="more than the cap of 50"):
        await downloader(streamed, max_bytes=50).read(image())


async def test_transient_cdn_failures_are_retried() -> None:
    """A 503 then a success: the download succeeds on the second attempt."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503) if calls == 1 else httpx.Response(200, content=PNG)

    assert (PNG, 2) == (await downloader(handler).read(image()), calls)


async def test_missing_image_fails_with_status_and_url() -> None:
    """A 404 is not retried and names the URL and the status."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(404, text="gone")

    with pytest.raises(DownloadError) as info:
        await downloader(handler).read(image())
    assert (404, "https://cdn.test/u/abc.png", 1) == (info.value.status_code, info.value.url, calls)


async def test_broken_download_leaves_no_file(tmp_path: Path) -> None:
    """A stream that breaks midway leaves neither the target nor a temporary file."""

    async def chunks() -> AsyncIterator[bytes]:
        yield PNG[:10]
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    with pytest.raises(DownloadError, match="broke off"):
        await downloader(handler).save(image(), tmp_path / "out.png")
    assert [] == os.listdir(tmp_path)


async def test_save_into_directory_names_file_from_url_and_type(tmp_path: Path) -> None:
    """Saving into a directory uses the URL's name with the content type's extension."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG, headers={"content-type": "image/jpeg"})

    path = await downloader(handler).save(image("https://cdn.test/u/a b?.png"), tmp_path)
    assert tmp_path / "a_b.jpg" == path
    assert PNG == path.read_bytes()


def test_safe_filename_never_escapes_the_directory() -> None:
    """Path separators and dots from a hostile URL cannot climb out of the directory."""
    name = safe_filename("https://cdn.test/%2e%2e%2f%2e%2e%2fetc%2fpasswd")
    assert "/" not in name
    assert not name.startswith(".")
    assert "image.png" == safe_filename("https://cdn.test/")


async def test_b64_json_images_save_without_a_download(tmp_path: Path) -> None:
    """Inline images decode to bytes and save with no CDN request."""
    fake = FakeLinkAI(default_response_format="b64_json")
    with fake.serve() as server:
        async with AsyncImageClient(DEFAULT_API_KEY, base_url=server.base_url) as client:
            response = await client.generate("a fox", model="gpt-image-2")
            data = await response.data[0].read()
            path = await response.data[0].save(tmp_path / "inline.png")
    assert data.startswith(b"\x89PNG")
    assert data == path.read_bytes()
    assert [] == fake.cdn_requests


async def test_save_results_saves_every_success_and_skips_failures(
    linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A batch's aligned results are saved a few at a time; failures give None."""
    async with AsyncImageClient(DEFAULT_API_KEY, base_url=linkai_server.base_url) as client:
        responses = [await client.generate(f"fox {i}", model="gpt-image-2") for i in range(5)]
        results: list[ImageResponse | BaseException] = [*responses, RuntimeError("failed")]
        saved = await save_results(results, tmp_path / "out", concurrency=2)
    assert saved[-1] is None
    paths = [p for entry in saved[:-1] for p in (entry or [])]
    assert 5 == len(set(paths))
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
