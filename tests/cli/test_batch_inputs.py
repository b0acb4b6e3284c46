"""What the CLI takes: extra batch columns as metadata, sizes in any case, -o file or dir."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from linkai_images import AsyncImageClient
from linkai_images._cli.batch_file import read_batch_file
from linkai_images.testing import FakeLinkAI, FakeServer

Run = Callable[..., tuple[int, str, str]]

PNG = b"\x89PNG\r\n\x1a\n"


def test_extra_csv_columns_are_metadata_not_errors(tmp_path: Path) -> None:
    """id,prompt,model,category: the request gets its fields, the job keeps the rest."""
    source = tmp_path / "prompts.csv"
    source.write_text("id,prompt,model,category\n7,a fox,gpt-image-2,animals\n", encoding="utf-8")
    (job,) = read_batch_file(source)
    assert ("a fox", "gpt-image-2") == (job.request.prompt, job.request.model)
    assert {"id": "7", "category": "animals"} == dict(job.metadata)


def test_extra_jsonl_keys_are_metadata_not_errors(tmp_path: Path) -> None:
    """JSON Lines keys that are no request field are kept with their JSON values."""
    source = tmp_path / "prompts.jsonl"
    source.write_text(
        '{"prompt": "a fox", "model": "gpt-image-2", "id": 7, "tags": ["a", "b"]}\n',
        encoding="utf-8",
    )
    (job,) = read_batch_file(source)
    assert {"id": 7, "tags": ["a", "b"]} == dict(job.metadata)


def test_a_batch_with_extra_columns_runs_and_sends_only_request_fields(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """The CSV of the issue runs; the API sees no 'id', the manifest keeps it, '2k' is sent '2K'."""
    source = tmp_path / "prompts.csv"
    source.write_text("id,prompt,model,size\n1,a fox,gpt-image-2,2k\n", encoding="utf-8")
    status, _, err = cli("batch", str(source), "--out", str(tmp_path / "out"), *api)
    assert 0 == status, err
    (request,) = linkai_fake.requests
    assert {"model": "gpt-image-2", "prompt": "a fox", "size": "2K"} == request.body
    (line,) = (tmp_path / "out" / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    assert "1" == json.loads(line)["id"]


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("id,model", "the header row has no 'prompt' column (it has 'id', 'model')"),
        ("prompt,prompt", "the header row repeats 'prompt'"),
    ],
)
def test_only_a_missing_prompt_column_is_refused(
    cli: Run, api: list[str], tmp_path: Path, header: str, complaint: str
) -> None:
    """A CSV without 'prompt' names it as the missing column."""
    source = tmp_path / "prompts.csv"
    source.write_text(f"{header}\n1,gpt-image-2\n", encoding="utf-8")
    status, _, err = cli("batch", str(source), "--out", str(tmp_path / "out"), *api)
    assert 1 == status
    assert complaint in err


@pytest.mark.anyio
async def test_size_tiers_are_case_insensitive(server: FakeServer, linkai_fake: FakeLinkAI) -> None:
    """size='2k' is the tier 2K, sent as '2K'."""
    async with AsyncImageClient(linkai_fake.api_key, base_url=server.base_url) as client:
        await client.generate("a fox", model="gpt-image-2", size="2k")
    assert "2K" == linkai_fake.requests[-1].body["size"]


@pytest.mark.parametrize("output", ["newdir/", "existing"])
def test_o_naming_a_directory_saves_into_it(
    cli: Run, api: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """-o ending in / (created) or naming an existing directory puts the image inside."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    status, out, _ = cli("generate", "a fox", "-m", "gpt-image-2", "-o", output, *api)
    assert 0 == status
    saved = Path(out.strip())
    assert (tmp_path / output.rstrip("/"), "a-fox.png") == (saved.parent.resolve(), saved.name)
    assert saved.read_bytes().startswith(PNG)


@pytest.mark.parametrize("output", ["fox.jpg", "newdir", "fox.webp"])
def test_o_with_a_suffix_of_another_type_is_refused_before_sending(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path, output: str
) -> None:
    """-o fox.jpg (PNG bytes would go in) or -o newdir (no suffix): an error, nothing sent."""
    status, _, err = cli(
        "generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path / output), *api
    )
    assert 1 == status
    assert "images come as PNG" in err
    assert "end the path with /" in err
    assert 0 == linkai_fake.request_count
    assert [] == list(tmp_path.iterdir())


def test_o_with_a_png_file_saves_there(cli: Run, api: list[str], tmp_path: Path) -> None:
    """-o fox.PNG is a file, written with the PNG bytes."""
    status, out, _ = cli(
        "generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path / "fox.PNG"), *api
    )
    assert (0, str(tmp_path / "fox.PNG")) == (status, out.strip())
    assert (tmp_path / "fox.PNG").read_bytes().startswith(PNG)
