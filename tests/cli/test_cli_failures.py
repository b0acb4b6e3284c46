"""The command line never loses a paid result, and says what to do about each failure."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Run, error_line, pngs, write_jsonl

from linkai_images._cli.run import CHECKPOINT_NAME
from linkai_images.testing import FakeServer, Fault


def test_generate_prints_the_url_when_the_save_fails(
    cli: Run, api: list[str], linkai_server: FakeServer, tmp_path: Path
) -> None:
    """Generated but not saved: the URL is printed, the error said, the status is 1."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the output directory should be")
    status, out, err = cli(
        "generate", "a fox", "-m", "gpt-image-2", "-o", str(blocker / "fox.png"), *api
    )
    [record] = linkai_server.fake.requests
    assert 1 == status
    assert 1 == linkai_server.fake.images_generated
    [url] = out.split()
    assert url.startswith(linkai_server.cdn_url)
    line = error_line(err)
    assert "the image was generated (and billed) but not saved" in line
    assert str(blocker) in line
    assert "its URL is printed above" in line
    assert "a fox" == record.prompt


def test_the_summary_sorts_failures_by_kind_with_line_numbers(
    cli: Run, api: list[str], linkai_server: FakeServer, tmp_path: Path
) -> None:
    """Refused, transient and uncertain failures each get their advice; lines count from 1."""
    fake = linkai_server.fake
    fake.fail(Fault.status(500), prompt="flaky")
    fake.fail(Fault.hang(5), prompt="slow")
    source = write_jsonl(
        tmp_path / "p.jsonl",
        "fine",
        "",
        "a forbidden picture",  # a banned word: 409
        {"prompt": "unknown model", "model": "no-such-model"},  # 402
        "flaky",
        "slow",
    )
    status, out, err = cli("batch", str(source), "--out", str(tmp_path / "out"),
                           "-m", "gpt-image-2", "--max-retries", "0", "--timeout", "0.5",
                           "--no-progress", *api)  # fmt: skip
    assert 1 == status
    assert "done 1, failed 3, uncertain 1, skipped (checkpoint) 0" in out
    expected = (
        "4 of 5 requests failed (1 uncertain, 2 refused, 1 transient); the summary above "
        "says what to do about each kind"
    )
    assert expected in error_line(err)
    sections = {
        block.split(" (", 1)[0]: block for block in out.split("\n") if not block.startswith(" ")
    }
    assert sections["uncertain"].endswith("so a rerun does not send them again")
    assert sections["refused"].endswith("then run the same command again")
    assert "retry them" in sections["transient"]
    assert '  line 6: "slow": no answer from the API' in out
    assert "  line 3: the API refused the request (409)" in out
    assert "  line 4: the API refused the request (402)" in out
    assert "  line 5: the API refused the request (500)" in out
    assert out.index("uncertain (1)") < out.index("refused (2)") < out.index("transient (1)")

    # A rerun sends the failures again (refusals cost nothing and fail the same way), but not
    # the uncertain one: it may be paid for.
    status, out, _ = cli("batch", str(source), "--out", str(tmp_path / "out"),
                         "-m", "gpt-image-2", "--no-progress", *api)  # fmt: skip
    assert 1 == status
    prompts = ("fine", "a forbidden picture", "unknown model", "flaky", "slow")
    assert [1, 2, 2, 2, 1] == [fake.attempts(p) for p in prompts]
    assert '  line 6: "slow": sent by an earlier run, which got no usable answer' in out


def test_a_batch_removes_stale_part_files_and_journals_saved_files(
    cli: Run, api: list[str], tmp_path: Path
) -> None:
    """Temporary files of killed saves go at start; each save is journaled with its path."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    stale = out_dir / ".0001-p1.png.0a1b2c3d.part"
    stale.write_bytes(b"half an image")
    mine = out_dir / ".notes.part"  # not a name a save writes: left alone
    mine.write_text("keep")
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2")
    status, _, _ = cli("batch", str(source), "--out", str(out_dir), "-m", "gpt-image-2",
                       "--no-progress", *api)  # fmt: skip
    assert 0 == status
    assert (False, True) == (stale.exists(), mine.exists())
    assert ["0001-p1.png", "0002-p2.png"] == pngs(out_dir)
    journal = [json.loads(line) for line in (out_dir / CHECKPOINT_NAME).read_text().splitlines()]
    saved = {record["index"]: record for record in journal if "saved" in record}
    successes = {record["index"]: record for record in journal if record.get("ok")}
    assert {0, 1} == set(saved) == set(successes)
    for index, name in ((0, "0001-p1.png"), (1, "0002-p2.png")):
        [entry] = saved[index]["saved"]
        assert (name, successes[index]["images"][0]["url"]) == (entry["path"], entry["url"])
        assert successes[index]["fp"] == saved[index]["fp"]
