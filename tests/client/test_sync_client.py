"""ImageClient: the blocking mirror works in scripts, threads and inside a running loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import linkai_images
from linkai_images import (
    BatchItem,
    ClientClosedError,
    ImageClient,
    ImageResponse,
    ServiceUnavailableError,
)
from linkai_images.testing import DEFAULT_API_KEY, FakeLinkAI, FakeServer, Fault


@pytest.fixture
def client(linkai_server: FakeServer) -> Iterator[ImageClient]:
    """A blocking client of the loopback fake, retry waits off."""
    with (
        linkai_images.set_testing(),
        ImageClient(
            DEFAULT_API_KEY, base_url=linkai_server.base_url, default_model="gpt-image-2"
        ) as c,
    ):
        yield c


def test_generate_blocks_and_returns_a_response(client: ImageClient, tmp_path: Path) -> None:
    """A plain call returns an ImageResponse whose image can be read and saved."""
    response = client.generate("a fox")
    assert isinstance(response, ImageResponse)
    data = client.read(response.data[0])
    assert data.startswith(b"\x89PNG")
    saved = client.save(response.data[0], tmp_path / "fox.png")
    assert data == saved.read_bytes()
    assert [tmp_path / f for f in sorted(p.name for p in tmp_path.iterdir())] == [saved]


def test_errors_surface_as_the_sdk_classes(client: ImageClient, linkai_fake: FakeLinkAI) -> None:
    """A failing call raises the same typed error as the async client, attempts counted."""
    linkai_fake.fail(Fault.status(503), prompt="p", times=10)
    with pytest.raises(ServiceUnavailableError) as info:
        client.generate("p")
    assert 3 == info.value.attempts


def test_many_threads_share_one_client(client: ImageClient, linkai_fake: FakeLinkAI) -> None:
    """Eight threads calling at once all get their own answers."""
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: client.generate(f"fox {i}"), range(32)))
    assert 32 == len({r.data[0].url for r in responses})
    assert 32 == linkai_fake.request_count


def test_works_inside_a_running_event_loop(client: ImageClient) -> None:
    """Called from a coroutine under asyncio.run (as in a Jupyter cell), it still works."""

    async def cell() -> ImageResponse:
        return client.generate("a fox in a notebook")

    assert 1 == len(asyncio.run(cell()).data)


def test_generate_many_and_as_completed_as_plain_iterator(client: ImageClient) -> None:
    """The batch calls block and iterate like their async twins."""
    results = client.generate_many(["a", "b", "c"])
    assert 3 == len(results)
    assert all(isinstance(r, ImageResponse) for r in results)
    items = list(client.as_completed(f"fox {i}" for i in range(5)))
    assert list(range(5)) == sorted(item.index for item in items)
    assert all(isinstance(item, BatchItem) and item.ok for item in items)


def test_leaving_as_completed_early_cancels_the_rest(
    client: ImageClient, linkai_fake: FakeLinkAI
) -> None:
    """Breaking out of the loop stops in-flight work; the client stays usable."""
    linkai_fake.latency = lambda rng: 0.0 if rng.random() < 0.3 else 5.0
    for _item in client.as_completed((f"fox {i}" for i in range(50)), concurrency=4):
        break
    linkai_fake.latency = 0.0
    assert 1 == len(client.generate("after").data)
    assert linkai_fake.request_count < 50


def test_close_is_idempotent_and_refuses_later_use(linkai_server: FakeServer) -> None:
    """close() twice is fine; a call after it raises ClientClosedError."""
    client = ImageClient(DEFAULT_API_KEY, base_url=linkai_server.base_url)
    client.close()
    client.close()
    assert client.is_closed
    with pytest.raises(ClientClosedError):
        client.generate("a fox", model="gpt-image-2")


def test_repr_masks_the_key(linkai_server: FakeServer) -> None:
    """The blocking client's repr never holds the key."""
    with ImageClient("sk-very-secret-value", base_url=linkai_server.base_url) as client:
        assert "secret" not in repr(client)
        assert repr(client).startswith("ImageClient(")


def test_script_that_forgets_close_still_exits(linkai_server: FakeServer) -> None:
    """A script that never calls close() exits promptly with status 0."""
    script = textwrap.dedent(
        f"""
        from linkai_images import ImageClient
        client = ImageClient({DEFAULT_API_KEY!r}, base_url={linkai_server.base_url!r})
        print(client.generate("a fox", model="gpt-image-2").data[0].url is not None)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert (0, "True") == (done.returncode, done.stdout.strip()), done.stderr
