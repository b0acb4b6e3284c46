"""save_results and image saves: provenance in PNGs only when asked, manifest and gallery."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from linkai_images import AsyncImageClient, BatchError, save_results
from linkai_images._outputs.pngtext import read_png_text
from linkai_images.testing import FakeLinkAI, Fault, png_size

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


async def served(url: str) -> bytes:
    """The bytes the fake CDN serves for ``url``."""
    async with httpx.AsyncClient() as http:
        return (await http.get(url)).content


async def test_save_and_read_give_the_bytes_as_served(
    client: AsyncImageClient, tmp_path: Path
) -> None:
    """Without provenance, read() and save() give exactly the served bytes."""
    image = (await client.generate("a fox")).data[0]
    assert image.url is not None
    original = await served(image.url)
    path = await image.save(tmp_path / "fox.png")
    assert (original, original) == (await image.read(), path.read_bytes())


async def test_provenance_is_written_only_when_asked(
    client: AsyncImageClient, tmp_path: Path
) -> None:
    """save(provenance=...) and read(provenance=...) add the text; the rest is as served."""
    image = (await client.generate("a fox")).data[0]
    text = {"Description": "a fox — 狐狸", "Source": "gpt-image-2"}
    path = await image.save(tmp_path / "fox.png", provenance=text)
    data = await image.read(provenance=text)
    assert (text, text) == (read_png_text(path.read_bytes()), read_png_text(data))
    assert {} == read_png_text(await image.read())


async def test_save_results_stamps_prompts_into_pngs(
    client: AsyncImageClient, tmp_path: Path
) -> None:
    """generate_many's results know their requests: each PNG carries its prompt and settings."""
    results = await client.generate_many(
        ["a fox", {"prompt": "a cat", "size": "1K", "quality": "high"}]
    )
    saved = await save_results(results, tmp_path)
    texts = [read_png_text(entry[0].read_bytes()) for entry in saved if entry]
    assert ["a fox", "a cat"] == [text["Description"] for text in texts]
    parameters = json.loads(texts[1]["linkai-images"])
    assert ("gpt-image-2", "1K", "high", results[1].urls[0]) == (
        parameters["model"],
        parameters["size"],
        parameters["quality"],
        parameters["url"],
    )
    assert "gpt-image-2" == texts[0]["Source"]


async def test_provenance_false_saves_the_served_bytes(
    client: AsyncImageClient, tmp_path: Path
) -> None:
    """save_results(provenance=False) writes the files exactly as served."""
    results = await client.generate_many(["a fox"])
    saved = await save_results(results, tmp_path, provenance=False)
    assert saved[0] is not None
    assert await served(results[0].urls[0]) == saved[0][0].read_bytes()


async def test_manifest_true_writes_metadata_failures_and_gallery(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """One manifest line per image (hash and size of the file), failures, and index.html."""
    fake.fail(Fault.status(409), prompt="a storm")
    try:
        await client.generate_many(["a fox", "a storm", {"prompt": "a cat", "size": "1K"}])
    except BatchError as exc:
        results = exc.results
    await save_results(results, tmp_path, manifest=True)
    rows = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert ["a cat", "a fox"] == sorted(row["prompt"] for row in rows)
    for row in rows:
        data = (tmp_path / row["file_name"]).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data), png_size(data)) == (
            row["sha256"],
            row["bytes"],
            (row["width"], row["height"]),
        )
    page = (tmp_path / "index.html").read_text()
    assert ("a storm" in page, "2 images, 1 failed" in page) == (True, True)
