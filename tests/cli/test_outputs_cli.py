"""What `linkai-images batch` leaves behind (manifest, PNG text, gallery) and `gallery DIR`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from linkai_images._outputs.manifest import read_rows, shard_manifest_name, write_rows
from linkai_images.testing import make_png

Run = Callable[..., tuple[int, str, str]]


def shard_output(directory: Path) -> None:
    """An output directory as two shards leave it: two images, two shard manifests, a failure."""
    directory.mkdir()
    for index, name in ((1, "0001-a.png"), (2, "0002-b.png")):
        (directory / name).write_bytes(make_png(8, 8))
        write_rows(directory / shard_manifest_name(index, 2), [{"file_name": name, "prompt": name}])
    write_rows(directory / ".linkai-failures.shard-2-of-2.jsonl", [
        {"label": "line 3", "prompt": "c", "error": "refused (409)"}
    ])  # fmt: skip


def test_gallery_merges_shard_manifests_and_writes_the_page(cli: Run, tmp_path: Path) -> None:
    """`gallery DIR` merges metadata.shard-*.jsonl into metadata.jsonl and writes index.html."""
    shard_output(tmp_path / "out")
    status, out, err = cli("gallery", str(tmp_path / "out"))
    assert (0, "") == (status, err)
    assert ["0001-a.png", "0002-b.png"] == [
        row["file_name"] for row in read_rows(tmp_path / "out" / "metadata.jsonl")
    ]
    page = (tmp_path / "out" / "index.html").read_text()
    assert ('src="0001-a.png"' in page, "refused (409)" in page) == (True, True)
    assert "(2 images, 1 failed)" in out


def test_gallery_of_a_missing_directory_is_one_error_line(cli: Run, tmp_path: Path) -> None:
    """A directory that does not exist is a user error, not a traceback."""
    status, _, err = cli("gallery", str(tmp_path / "nope"))
    assert (1, f"linkai-images: error: {tmp_path / 'nope'}: no such directory\n") == (status, err)
