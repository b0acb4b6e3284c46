"""What `linkai-images batch` leaves behind (manifest, PNG text, gallery) and `gallery DIR`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from linkai_images import ImageRequest
from linkai_images._batch.checkpoint import intent_record
from linkai_images._batch.fingerprint import _fingerprint
from linkai_images._cli.main import main
from linkai_images._outputs.manifest import read_rows, shard_manifest_name, write_rows
from linkai_images._outputs.pngtext import read_png_text
from linkai_images.testing import FakeLinkAI, FakeServer, make_png

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


# --- batch outputs -------------------------------------------------------------------------


def write_jsonl(path: Path, *lines: object) -> Path:
    """A JSON Lines file of ``lines``."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def batch_args(source: Path, out: Path, api: list[str], *more: str) -> list[str]:
    """`batch SOURCE --out OUT` on the fake, gpt-image-2 by default, no progress."""
    return ["batch", str(source), "--out", str(out), "-m", "gpt-image-2", "--no-progress",
            *more, *api]  # fmt: skip


def manifest(out: Path) -> list[dict[str, object]]:
    """The lines of ``out/metadata.jsonl``."""
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def test_batch_leaves_a_manifest_png_text_and_a_gallery(
    cli: Run, api: list[str], tmp_path: Path
) -> None:
    """metadata.jsonl (file_name first, hashes right), the prompt inside each PNG, index.html."""
    (tmp_path / "ref.png").write_bytes(make_png(3, 3))
    source = write_jsonl(
        tmp_path / "p.jsonl",
        {"prompt": "a red fox", "size": "1K", "quality": "high", "images": ["ref.png"]},
        "an owl <script>alert(1)</script>",
    )
    status, out, err = cli(*batch_args(source, tmp_path / "out", api))
    assert (0, "") == (status, err)
    rows = manifest(tmp_path / "out")
    assert ["0001-a-red-fox.png", "0002-an-owl-script-alert-1-script.png"] == [
        row["file_name"] for row in rows
    ]
    first = rows[0]
    data = (tmp_path / "out" / "0001-a-red-fox.png").read_bytes()
    assert ("file_name", "a red fox", "gpt-image-2", "1K", "high") == (
        next(iter(first)), first["prompt"], first["model"], first["size"], first["quality"]
    )  # fmt: skip
    assert (hashlib.sha256(data).hexdigest(), len(data), 1, 1) == (
        first["sha256"], first["bytes"], first["attempts"], len(first["reference_images"])
    )  # fmt: skip
    reference = {"url": None, "name": "ref.png",
                 "sha256": hashlib.sha256(make_png(3, 3)).hexdigest()}  # fmt: skip
    assert reference == first["reference_images"][0]
    assert "a red fox" == read_png_text(data)["Description"]
    page = (tmp_path / "out" / "index.html").read_text()
    assert ("&lt;script&gt;alert(1)&lt;/script&gt;" in page, "<script>alert" in page) == (
        True,
        False,
    )
    assert "gallery: " in out


def test_no_provenance_saves_the_bytes_as_served(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """--no-provenance: the PNGs hold no text chunks; the manifest is still written."""
    source = write_jsonl(tmp_path / "p.jsonl", "a fox")
    assert 0 == cli(*batch_args(source, tmp_path / "out", api, "--no-provenance"))[0]
    data = (tmp_path / "out" / "0001-a-fox.png").read_bytes()
    assert ({}, 1) == (read_png_text(data), len(manifest(tmp_path / "out")))


def test_the_manifest_heals_after_a_crash(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A torn manifest and a lost file after a crash: the rerun restores both, sends nothing."""
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2", "p3")
    out = tmp_path / "out"
    assert 0 == cli(*batch_args(source, out, api))[0]
    lines = (out / "metadata.jsonl").read_text().splitlines()
    (out / "metadata.jsonl").write_text(lines[0] + "\n" + lines[1][:30])  # p3 gone, p2 torn
    (out / "0003-p3.png").unlink()  # a kill before its rename
    sent = linkai_fake.request_count
    assert 0 == cli(*batch_args(source, out, api))[0]
    assert sent == linkai_fake.request_count  # everything came from the checkpoint
    rows = manifest(out)
    assert ["0001-p1.png", "0002-p2.png", "0003-p3.png"] == [row["file_name"] for row in rows]
    for row in rows:
        data = (out / str(row["file_name"])).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]


def test_shards_write_their_own_manifests_into_one_directory(
    cli: Run, api: list[str], tmp_path: Path
) -> None:
    """Two shards share --out; each keeps metadata.shard-I-of-N.jsonl, metadata.jsonl has all."""
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2", "p3")
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert 0 == cli(*batch_args(source, out, api, "--shard", shard))[0]
    assert ["metadata.jsonl", "metadata.shard-0-of-2.jsonl", "metadata.shard-1-of-2.jsonl"] == (
        sorted(path.name for path in out.glob("metadata*.jsonl"))
    )
    assert ["p1", "p2", "p3"] == [row["prompt"] for row in manifest(out)]
    assert "3 images" in (out / "index.html").read_text()


# --- dry run and spending cap ------------------------------------------------------------


def test_dry_run_prints_the_plan_and_sends_nothing(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Groups, reference images and MB, invalid lines, resume skips, cost; nothing sent."""
    (tmp_path / "ref.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(499_992))
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2",
                         {"prompt": "p3", "size": "1K", "images": ["ref.png", "ref.png"]},
                         {"prompt": "p4", "size": "3K"})  # fmt: skip
    prices = tmp_path / "prices.json"
    prices.write_text('{"currency": "USD", "models": {"gpt-image-2": {"1K": 0.5, "2K": 1}}}')
    good = write_jsonl(tmp_path / "good.jsonl", "p1")
    assert 0 == cli(*batch_args(good, tmp_path / "out", api))[0]  # p1 is in the checkpoint
    sent = linkai_fake.request_count
    status, out, err = cli(*batch_args(source, tmp_path / "out", [], "--dry-run",
                                       "--prices", str(prices)))  # fmt: skip
    assert (1, "", sent) == (status, err, linkai_fake.request_count)
    assert out.splitlines() == [
        "dry run: nothing was sent",
        "4 requests: 3 valid, 1 invalid; 2 to send, 1 answered by the checkpoint (resume skips "
        "them)",
        "by model, size and quality:",
        "  gpt-image-2 (1K, medium): 1 requests, 1 to send x 0.5 USD = 0.50 USD",
        "  gpt-image-2 (2K, medium): 2 requests, 1 to send x 1 USD = 1.00 USD",
        "reference images: 1 distinct, 0.5 MB local",
        "estimated cost: 1.50 USD",
        "a resume skips (already in .linkai-checkpoint.jsonl): line 1",
        "invalid lines (1; a real run refuses the file):",
        "  line 4: size '3K' is not offered by gpt-image-2; choose one of 1K, 2K, 4K",
    ]


def test_max_cost_stops_launches_and_the_summary_says_so(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """--max-cost 2 at 1 an image: two sent, three not, said in the summary; exit 1."""
    source = write_jsonl(tmp_path / "p.jsonl", *[f"p{i}" for i in range(5)])
    prices = tmp_path / "prices.toml"
    prices.write_text('[models]\n"gpt-image-2" = 1\n')
    status, out, err = cli(*batch_args(source, tmp_path / "out", api, "--concurrency", "1",
                                       "--prices", str(prices), "--max-cost", "2"))  # fmt: skip
    assert (1, 2) == (status, linkai_fake.request_count)
    assert "3 not sent: the estimated cost would pass --max-cost 2 (2 sent)" in out
    assert "3 of 5 requests failed" in err


def test_max_cost_needs_prices_for_every_line(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Without --prices, or with a line that has no price, nothing is sent."""
    source = write_jsonl(tmp_path / "p.jsonl", "p1", {"prompt": "p2", "size": "4K"})
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"gpt-image-2": {"2K": 1}}}')
    no_prices = cli(*batch_args(source, tmp_path / "out", api, "--max-cost", "5"))
    unpriced = cli(*batch_args(source, tmp_path / "out", api, "--prices", str(prices),
                               "--max-cost", "5"))  # fmt: skip
    assert (1, 1, 0) == (no_prices[0], unpriced[0], linkai_fake.request_count)
    assert "--max-cost needs --prices FILE" in no_prices[2]
    assert "line 2 (gpt-image-2 at 4K)" in unpriced[2].split("no price in", 1)[1]


def test_manifest_matches_the_files_through_kill_9_and_resumes(tmp_path: Path) -> None:
    """SIGKILL three times mid-batch: every manifest line names an intact file; the end has all."""
    fake = FakeLinkAI(latency=lambda rng: rng.uniform(0.05, 0.15), seed=5)
    source = write_jsonl(tmp_path / "p.jsonl", *[f"lantern {i}" for i in range(40)])
    out = tmp_path / "out"
    with fake.serve() as server:
        command = [sys.executable, "-m", "linkai_images", *batch_args(source, out, []),
                   "--concurrency", "4", "--base-url", server.base_url]  # fmt: skip
        env = {**os.environ, "LINKAI_API_KEY": fake.api_key}
        killed_mid_run = []
        for kill_after in (5, 15, 25):
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
            try:
                for _ in range(3000):  # a guard against a hung test, not a timing assertion
                    if len(list(out.glob("*.png"))) >= kill_after or child.poll() is not None:
                        break
                    time.sleep(0.005)
            finally:
                killed_mid_run.append(child.poll() is None)
                child.kill()
                child.wait()
            for row in read_rows(out / "metadata.jsonl"):  # a torn last line is skipped
                data = (out / str(row["file_name"])).read_bytes()
                assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert [True, True, True] == killed_mid_run
        # The requests in flight at each kill are uncertain (maybe billed): sent only on request.
        assert main([*command[3:], "--api-key", fake.api_key]) in (0, 1)
        assert 0 == main([*command[3:], "--api-key", fake.api_key, "--resend-uncertain"])
    rows = manifest(out)
    assert sorted(path.name for path in out.glob("*.png")) == [row["file_name"] for row in rows]
    assert [f"lantern {i}" for i in range(40)] == [row["prompt"] for row in rows]
    for row in rows:
        assert (
            hashlib.sha256((out / str(row["file_name"])).read_bytes()).hexdigest() == row["sha256"]
        )


def test_datasets_loads_a_batch_output_directory(
    cli: Run, api: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sharded batch's directory, as left (checkpoints, gallery, shard manifests), loads."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "ref.png").write_bytes(make_png(3, 3))
    source = write_jsonl(tmp_path / "p.jsonl", "p1", {"prompt": "p2", "images": ["ref.png"]}, "p3")
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        assert 0 == cli(*batch_args(source, out, api, "--shard", shard))[0]
    loaded = datasets.load_dataset(
        "imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert ["p1", "p2", "p3"] == sorted(loaded["prompt"])
    assert [0, 1, 0] == [len(row["reference_images"]) for row in sorted(loaded, key=prompt_of)]


def prompt_of(row: dict[str, object]) -> str:
    """A row's prompt (a sort key)."""
    return str(row["prompt"])


def test_dry_run_lists_uncertain_requests(cli: Run, tmp_path: Path) -> None:
    """A request an earlier run may have paid for is listed as uncertain, not counted to send."""
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2")
    (tmp_path / "out").mkdir()
    request = ImageRequest(prompt="p1", model="gpt-image-2")
    fp = _fingerprint(request)
    assert fp is not None
    (tmp_path / "out" / ".linkai-checkpoint.jsonl").write_text(
        json.dumps(intent_record("run-1", fp, 0, request)) + "\n"
    )
    status, out, _ = cli(*batch_args(source, tmp_path / "out", [], "--dry-run"))
    assert 0 == status
    assert "2 requests: 2 valid, 0 invalid; 1 to send, 0 answered by the checkpoint" in out
    assert "uncertain (not sent again): line 1" in out
    status, out, _ = cli(*batch_args(source, tmp_path / "out", [], "--dry-run",
                                     "--resend-uncertain"))  # fmt: skip
    assert "2 to send" in out


def test_a_lines_extra_columns_go_into_the_manifest(
    linkai_server: FakeServer, tmp_path: Path
) -> None:
    """Job.metadata (a batch file's other columns) lands in the line; clashing names renamed."""
    from linkai_images import AsyncImageClient
    from linkai_images._cli.run import Job, run_jobs

    async def run() -> None:
        async with AsyncImageClient(
            linkai_server.fake.api_key, base_url=linkai_server.base_url
        ) as client:
            request = client.check(ImageRequest(prompt="p", model="gpt-image-2"))
            job = Job(number=1, request=request, label="line 1",
                      metadata={"id": "A7", "file_name": "x.txt"})  # fmt: skip
            await run_jobs(client, [job], tmp_path / "out", concurrency=1, progress=False)

    anyio.run(run)
    row = manifest(tmp_path / "out")[0]
    assert ("A7", "x.txt") == (row["id"], row["input_filename"])
