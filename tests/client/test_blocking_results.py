"""Results of ImageClient read and save without await; those of AsyncImageClient stay awaitable."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import linkai_images
from linkai_images import (
    AsyncImageClient,
    BatchError,
    ImageClient,
    ImageResponse,
    save_results,
)
from linkai_images.testing import DEFAULT_API_KEY, FakeLinkAI, FakeServer, Fault

ROOT = Path(__file__).parent.parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(server: FakeServer) -> Iterator[ImageClient]:
    """A blocking client of the loopback fake, retry waits off."""
    with (
        linkai_images.set_testing(),
        ImageClient(DEFAULT_API_KEY, base_url=server.base_url, default_model="gpt-image-2") as c,
    ):
        yield c


def test_generate_then_save_with_no_await(client: ImageClient, tmp_path: Path) -> None:
    """The notebook line: client.generate(...).data[0].save(path) writes the file, returns it."""
    image = client.generate("a white fox").data[0]
    saved = image.save(tmp_path / "fox.png")
    assert tmp_path / "fox.png" == saved
    assert saved.read_bytes().startswith(PNG)
    assert saved.read_bytes() == image.read()


def test_save_all_blocks_and_creates_the_directory(client: ImageClient, tmp_path: Path) -> None:
    """response.save_all(dir) returns the paths written, aligned with data."""
    response = client.generate("two foxes")
    paths = response.save_all(tmp_path / "new" / "dir")
    assert len(response.data) == len(paths)
    assert all(path.parent == tmp_path / "new" / "dir" for path in paths)
    assert all(path.read_bytes().startswith(PNG) for path in paths)


def test_batch_results_and_items_block_too(
    client: ImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """generate_many (and BatchError.results), as_completed: every response saves blocking."""
    fake.fail(Fault.status(400, message="no"), prompt="bad")
    results = client.generate_many(["a", "b"], return_exceptions=True)
    with pytest.raises(BatchError) as caught:
        client.generate_many(["c", "bad"])
    items = list(client.as_completed(["d", "e"], concurrency=2))
    responses = [
        *[r for r in results if isinstance(r, ImageResponse)],
        *[r for r in caught.value.results if isinstance(r, ImageResponse)],
        *[item.response for item in items if item.response is not None],
    ]
    paths = [response.data[0].save(tmp_path) for response in responses]
    assert 5 == len({path.name for path in paths})
    assert all(isinstance(path, Path) and path.exists() for path in paths)


def test_images_still_save_after_the_client_is_closed(server: FakeServer, tmp_path: Path) -> None:
    """An image outlives its client: after close() it saves through a pool of its own."""
    with ImageClient(DEFAULT_API_KEY, base_url=server.base_url, default_model="gpt-image-2") as c:
        response = c.generate("a fox")
    assert c.is_closed
    assert response.data[0].save(tmp_path / "late.png").read_bytes().startswith(PNG)


def test_blocking_saves_work_inside_a_running_event_loop(
    client: ImageClient, tmp_path: Path
) -> None:
    """As in a Jupyter cell: a loop runs in this thread, and save() still just blocks."""

    async def cell() -> Path:
        return client.generate("a fox").data[0].save(tmp_path / "cell.png")

    assert asyncio.run(cell()).read_bytes().startswith(PNG)


def test_save_results_has_a_blocking_form(client: ImageClient, tmp_path: Path) -> None:
    """client.save_results saves a batch's results, failures skipped, without await."""
    results = client.generate_many(["a", "b"], return_exceptions=True)
    saved = client.save_results([*results, RuntimeError("failed")], tmp_path / "out")
    assert [1, 1, None] == [None if s is None else len(s) for s in saved]
    assert 2 == len(list((tmp_path / "out").iterdir()))


@pytest.mark.anyio
async def test_async_results_stay_awaitable(server: FakeServer, tmp_path: Path) -> None:
    """From AsyncImageClient, read(), save() and save_all() return awaitables."""
    async with AsyncImageClient(
        DEFAULT_API_KEY, base_url=server.base_url, default_model="gpt-image-2"
    ) as client:
        response = await client.generate("a fox")
        pending = response.data[0].save(tmp_path / "a.png")
        assert inspect.isawaitable(pending)
        assert (tmp_path / "a.png") == await pending
        assert (await response.data[0].read()).startswith(PNG)
        assert 1 == len(await response.save_all(tmp_path / "all"))
        assert [[tmp_path / "r" / (await response.save_all(tmp_path / "r"))[0].name]] == (
            await save_results([response], tmp_path / "r")
        )


TYPED = textwrap.dedent(
    """
    from linkai_images import AsyncImageClient, ImageClient, ImageResponse

    def blocking(client: ImageClient) -> None:
        response = client.generate("a fox")
        reveal_type(response.data[0].read())
        reveal_type(response.data[0].save("fox.png"))
        reveal_type(response.save_all("out"))
        for item in client.as_completed(["a"]):
            assert item.response is not None
            reveal_type(item.response.data[0].save("x.png"))
        reveal_type(client.generate_many(["a"])[0].save_all("out"))

    async def awaitable(client: AsyncImageClient, plain: ImageResponse) -> None:
        response = await client.generate("a fox")
        _ = reveal_type(response.data[0].read())
        reveal_type(await response.data[0].save("fox.png"))
        _ = reveal_type(plain.save_all("out"))
        ImageResponse.from_dict(response.to_dict()).data[0].save("x.png")
    """
)


def test_the_types_say_which_results_block(tmp_path: Path) -> None:
    """mypy --strict: blocking results give bytes and paths, async ones coroutines to await."""
    (tmp_path / "typed.py").write_text(TYPED, encoding="utf-8")
    # In a child process: mypy raises the recursion limit of the process it runs in.
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(ROOT / ".mypy_cache"), str(tmp_path / "typed.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    ).stdout  # fmt: skip
    lines = [
        line.split(": ", 1)[1].replace("builtins.", "").replace("pathlib.", "")
        for line in out.splitlines()
        if "typed.py:" in line
    ]
    assert [
        'note: Revealed type is "bytes"',
        'note: Revealed type is "Path"',
        'note: Revealed type is "list[Path]"',
        'note: Revealed type is "Path"',
        'note: Revealed type is "list[Path]"',
        'note: Revealed type is "typing.Coroutine[Any, Any, bytes]"',
        'note: Revealed type is "Path"',
        'note: Revealed type is "typing.Coroutine[Any, Any, list[Path]]"',
        'error: Value of type "Coroutine[Any, Any, Path]" must be used  [unused-coroutine]',
        "note: Are you missing an await?",
    ] == lines
