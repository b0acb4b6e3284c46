"""metadata.jsonl: ImageFolder layout, line by line, crash-consistent, loadable by `datasets`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from linkai_images import ImageRequest, ImageResponse
from linkai_images._models import GeneratedImage
from linkai_images._outputs.gallery import merge_manifests
from linkai_images._outputs.manifest import (
    ManifestWriter,
    extra_column,
    file_facts,
    manifest_row,
    read_rows,
    reference_entries,
    shard_manifest_name,
)
from linkai_images.testing._png import make_png

pytestmark = pytest.mark.anyio


def part_files(directory: Path) -> list[str]:
    """Temporary files left in ``directory``."""
    return [path.name for path in directory.iterdir() if path.name.endswith(".part")]


def manifests(directory: Path) -> list[str]:
    """The manifest files of ``directory``, sorted."""
    return sorted(path.name for path in directory.glob("metadata*.jsonl"))


def saved_row(directory: Path, name: str, prompt: str, **extra: object) -> dict[str, object]:
    """Write a PNG named ``name`` and return its manifest line."""
    (directory / name).write_bytes(make_png(32, 16))
    request = ImageRequest(prompt=prompt, model="gpt-image-2", size="1K", quality="high")
    response = ImageResponse(
        data=(GeneratedImage(url=f"https://cdn.example/{name}"),),
        model="gpt-image-2",
        attempts=2,
        elapsed=1.25,
        created=1_700_000_000,
        request_id="req-1",
    )
    return manifest_row(
        file_name=name,
        request=request,
        response=response,
        position=0,
        facts=file_facts(directory / name),
        extra=extra,
    )


def test_a_line_has_file_name_first_then_every_column(tmp_path: Path) -> None:
    """Columns come in the documented order; extra input columns sit before url."""
    row = saved_row(tmp_path, "0001-fox.png", "a fox", id="A7", url="mine")
    assert [
        "file_name", "prompt", "model", "size", "aspect_ratio", "quality", "reference_images",
        "id", "input_url", "url", "request_id", "attempts", "elapsed", "created", "sha256",
        "bytes", "width", "height",
    ] == list(row)  # fmt: skip
    png = make_png(32, 16)
    assert (len(png), 32, 16, "A7", "mine") == (
        row["bytes"],
        row["width"],
        row["height"],
        row["id"],
        row["input_url"],
    )


def test_reference_images_are_urls_or_file_names_with_sha256(tmp_path: Path) -> None:
    """A URL stays a URL; a local file is its name plus the sha256 of its bytes."""
    (tmp_path / "cat.png").write_bytes(b"\x89PNG cat")
    digest = hashlib.sha256(b"\x89PNG cat").hexdigest()
    assert [
        {"url": "https://example.com/dog.png", "name": None, "sha256": None},
        {"url": None, "name": "cat.png", "sha256": digest},
    ] == reference_entries(["https://example.com/dog.png", tmp_path / "cat.png"])


async def test_each_line_is_on_disk_as_soon_as_it_is_added(tmp_path: Path) -> None:
    """add() appends and syncs the line at once, before the manifest is closed."""
    writer = await ManifestWriter.open(tmp_path)
    await writer.add(saved_row(tmp_path, "0002-b.png", "b"))
    assert ["0002-b.png"] == [row["file_name"] for row in read_rows(tmp_path / "metadata.jsonl")]
    await writer.add(saved_row(tmp_path, "0001-a.png", "a"))
    await writer.aclose()
    lines = (tmp_path / "metadata.jsonl").read_text().splitlines()
    assert ["0001-a.png", "0002-b.png"] == [json.loads(line)["file_name"] for line in lines]


async def test_reopening_drops_torn_lines_and_missing_files(tmp_path: Path) -> None:
    """After a crash: a torn last line and lines whose file is gone are dropped, atomically."""
    kept = saved_row(tmp_path, "0001-a.png", "a")
    gone = saved_row(tmp_path, "0002-b.png", "b")
    (tmp_path / "0002-b.png").unlink()
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps(kept) + "\n" + json.dumps(gone) + "\n" + '{"file_name": "0003-c.p'
    )
    writer = await ManifestWriter.open(tmp_path)
    assert (True, False) == (writer.has("0001-a.png"), writer.has("0002-b.png"))
    assert [kept] == read_rows(tmp_path / "metadata.jsonl")
    await writer.aclose()
    assert [] == part_files(tmp_path)


async def test_a_file_written_twice_has_one_line(tmp_path: Path) -> None:
    """A resumed run that saves a file again leaves one line for it, the newest."""
    writer = await ManifestWriter.open(tmp_path)
    await writer.add(saved_row(tmp_path, "0001-a.png", "first"))
    await writer.add(saved_row(tmp_path, "0001-a.png", "second"))
    await writer.aclose()
    assert ["second"] == [row["prompt"] for row in read_rows(tmp_path / "metadata.jsonl")]


async def test_shards_keep_their_own_files_and_merge(tmp_path: Path) -> None:
    """Two shards write metadata.shard-I-of-N.jsonl; merging gives one metadata.jsonl."""
    for index, name in ((1, "0001-a.png"), (2, "0002-b.png")):
        writer = await ManifestWriter.open(tmp_path, shard_manifest_name(index, 2))
        await writer.add(saved_row(tmp_path, name, name))
        await writer.aclose()
    assert ["metadata.shard-1-of-2.jsonl", "metadata.shard-2-of-2.jsonl"] == manifests(tmp_path)
    merged = merge_manifests(tmp_path)
    assert ["0001-a.png", "0002-b.png"] == [row["file_name"] for row in merged]
    assert merged == read_rows(tmp_path / "metadata.jsonl")


def test_extra_columns_never_clash_or_pass_for_files() -> None:
    """Input columns named like manifest columns or like datasets' file columns are renamed."""
    assert ["id", "input_url", "input_filename", "source_filename", "filenames"] == [
        extra_column(name) for name in ("id", "url", "file_name", "source_file_name", "file_names")
    ]


async def test_datasets_loads_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_dataset("imagefolder", data_dir=...) reads the images with every manifest column."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "out"
    folder.mkdir()
    writer = await ManifestWriter.open(folder)
    await writer.add(saved_row(folder, "0001-p.png", "prompt 1", id="k1"))
    await writer.add(saved_row(folder, "0002-p.png", "prompt 2", source_file_name="notes.txt"))
    await writer.aclose()  # lines with different extra columns: one schema for the file
    loaded = datasets.load_dataset(
        "imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert ["prompt 1", "prompt 2"] == sorted(loaded["prompt"])
    columns = {"image", "prompt", "model", "id", "source_filename", "url", "sha256", "width"}
    assert columns <= set(loaded.column_names)
    assert (32, 16) == loaded[0]["image"].size
