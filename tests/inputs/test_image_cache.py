"""The client's image cache: each distinct reference image read once and encoded once."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from linkai_images import AsyncImageClient, RequestValidationError
from linkai_images._inputs import local
from linkai_images._inputs.cache import ImageCache, ImageSource, Loaded
from linkai_images.testing import FakeLinkAI, FakeServer

pytestmark = pytest.mark.anyio

MODEL = "gpt-image-2"


def png(size: int = 4096) -> bytes:
    """A PNG signature and random bytes: distinct content each call."""
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts file reads (``read_path``) and encodes (``data_uri_ascii``)."""
    counts: collections.Counter[str] = collections.Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(local, "read_path", counting("read", local.read_path))
    monkeypatch.setattr(local, "data_uri_ascii", counting("encode", local.data_uri_ascii))
    return counts


def client_on(server: FakeServer, **options: Any) -> AsyncImageClient:
    """A client on the served fake."""
    return AsyncImageClient(server.fake.api_key, base_url=server.base_url, **options)


async def test_a_batch_reads_and_encodes_each_distinct_image_once(
    server: FakeServer, fake: FakeLinkAI, counted: collections.Counter[str], tmp_path: Path
) -> None:
    """48 requests over two files and one bytes object, 16 at once: 2 reads, 3 encodes."""
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in paths:
        path.write_bytes(png())
    data = png()
    images: list[object] = [paths[0], str(paths[1]), data]
    requests = [
        {"prompt": f"style {i}", "model": MODEL, "images": [images[i % 3]]} for i in range(48)
    ]
    async with client_on(server, max_concurrency=16) as client:
        await client.generate_many(requests)
    assert {"read": 2, "encode": 3} == dict(counted)
    assert 48 == sum(1 for r in fake.requests if r.images and r.images[0].valid)


async def test_concurrent_requests_wait_for_one_encode_even_when_nothing_is_kept(
    server: FakeServer, counted: collections.Counter[str], tmp_path: Path
) -> None:
    """image_cache_bytes=0: 8 requests at once on one file still read and encode it once."""
    path = tmp_path / "a.png"
    path.write_bytes(png(2**20))
    async with client_on(server, max_concurrency=8, image_cache_bytes=0) as client:

        async def one(prompt: str) -> None:
            await client.generate(prompt, model=MODEL, images=[path])

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, f"p{i}")
        assert 0 == client._images.nbytes
    assert {"read": 1, "encode": 1} == dict(counted)


async def test_a_file_changed_on_disk_is_read_again(
    server: FakeServer, fake: FakeLinkAI, counted: collections.Counter[str], tmp_path: Path
) -> None:
    """A rewritten file (new size and mtime) is read and sent anew; the old encoding is not."""
    path = tmp_path / "a.png"
    path.write_bytes(png(1000))
    async with client_on(server) as client:
        await client.generate("first", model=MODEL, images=[path])
        path.write_bytes(png(2000))
        await client.generate("second", model=MODEL, images=[path])
    assert [1008, 2008] == [r.images[0].size for r in fake.requests]
    assert {"read": 2, "encode": 2} == dict(counted)


async def test_equal_content_under_two_names_is_encoded_once(
    server: FakeServer, counted: collections.Counter[str], tmp_path: Path
) -> None:
    """Two paths and a bytes object with the same content: two reads, one encode."""
    data = png()
    first, second = tmp_path / "a.png", tmp_path / "copy.png"
    first.write_bytes(data)
    second.write_bytes(data)
    async with client_on(server) as client:
        for image in (first, second, data):
            await client.generate("p", model=MODEL, images=[image])
    assert {"read": 2, "encode": 1} == dict(counted)


async def test_a_mutated_bytearray_is_sent_as_it_is_now(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """A bytearray has no identity key: changed between calls, the new content is sent."""
    data = bytearray(png(1000))
    async with client_on(server) as client:
        await client.generate("first", model=MODEL, images=[data])
        data += b"\x00" * 500
        await client.generate("second", model=MODEL, images=[data])
    assert [1008, 1508] == [r.images[0].size for r in fake.requests]


async def test_a_failed_read_is_not_kept_and_every_request_gets_its_error(
    server: FakeServer, tmp_path: Path
) -> None:
    """A file that is no image: each of four concurrent requests fails with the reason."""
    path = tmp_path / "notes.png"
    path.write_bytes(b"just some text, not an image" * 100)
    async with client_on(server) as client:
        results = await client.generate_many(
            [{"prompt": f"{i}", "model": MODEL, "images": [path]} for i in range(4)],
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert [RequestValidationError] * 4 == [type(e) for e in errors]
    assert all("is not a PNG, JPEG, WEBP or GIF image" in str(e) for e in errors)


async def test_unused_images_are_dropped_oldest_first_past_the_bound() -> None:
    """Bound 250 bytes, three 100-byte images released in turn: the oldest goes first."""
    cache = ImageCache(max_bytes=250)
    loads: list[str] = []

    def source(name: str) -> ImageSource:
        def load() -> Loaded:
            loads.append(name)
            return Loaded(name.encode() * 100)

        return ImageSource(key=name, load=load)

    for name in ("a", "b", "c"):
        cache.release(await cache.acquire(source(name)))
    assert 200 == cache.nbytes
    cache.release(await cache.acquire(source("c")))
    cache.release(await cache.acquire(source("a")))
    assert ["a", "b", "c", "a"] == loads


async def test_images_in_use_are_kept_whatever_the_bound() -> None:
    """Bound 0: an image held by a request stays; released, it goes."""
    cache = ImageCache(max_bytes=0)
    image = await cache.acquire(ImageSource(key="k", load=lambda: Loaded(b"x" * 100)))
    again = await cache.acquire(ImageSource(key="k", load=lambda: Loaded(b"y")))
    assert (image, 100) == (again, cache.nbytes)
    cache.release(image)
    cache.release(again)
    assert 0 == cache.nbytes


def test_a_negative_cache_bound_is_refused() -> None:
    """image_cache_bytes below 0 is refused, naming the value."""
    with pytest.raises(ValueError, match="image_cache_bytes must be 0 or more, got -1"):
        AsyncImageClient("sk-test", image_cache_bytes=-1)
