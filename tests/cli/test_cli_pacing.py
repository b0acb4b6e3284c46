"""`linkai-images` pacing options and `batch --shard I/N`, over the loopback fake."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from linkai_images._cli.main import build_parser, main
from linkai_images._cli.options import client_options
from linkai_images.testing import FakeServer

Run = Callable[..., tuple[int, str, str]]  # the ``cli`` fixture of conftest.py


def write_jsonl(path: Path, count: int) -> Path:
    """A JSON Lines file of ``count`` prompts."""
    path.write_text("".join(json.dumps(f"prompt {i}") + "\n" for i in range(count)))
    return path


def test_pacing_options_reach_the_client() -> None:
    """--rate-limit, --model-rate-limit (repeated), --adaptive-concurrency, --limiter-url."""
    args = build_parser().parse_args(
        [
            "generate",
            "p",
            "-m",
            "gpt-image-2",
            "--api-key",
            "sk-x",
            "--rate-limit",
            "60/minute",
            "--model-rate-limit",
            "gpt-image-2=5/minute",
            "--model-rate-limit",
            "a=1/second",
            "--adaptive-concurrency",
            "--limiter-url",
            "redis://localhost:6379/0",
        ]
    )
    options = client_options(args)
    expected = {
        "rate_limit": "60/minute",
        "model_rate_limits": {"gpt-image-2": "5/minute", "a": "1/second"},
        "adaptive_concurrency": True,
        "limiter_url": "redis://localhost:6379/0",
    }
    assert expected == {name: options[name] for name in expected}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--rate-limit", "60/min"], "N/second, N/minute or N/hour"),
        (["--model-rate-limit", "5/minute"], "is not MODEL=RATE"),
        (["--model-rate-limit", "m=5/fortnight"], "N/second, N/minute or N/hour"),
    ],
)
def test_bad_rates_are_usage_errors(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad rate stops the command with status 2 and says what is allowed."""
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "p", "-m", "gpt-image-2", *option])
    assert 2 == exit_.value.code
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["4/4", "1", "a/b", "-1/2"])
def test_bad_shards_are_usage_errors(
    shard: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--shard must be I/N with 0 <= I < N."""
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(write_jsonl(tmp_path / "b.jsonl", 2)), "--out", "o", "--shard", shard])
    assert 2 == exit_.value.code
    assert "--shard" in capsys.readouterr().err


def test_shards_split_a_file_and_share_the_output(
    cli: Run, api: list[str], tmp_path: Path, linkai_server: FakeServer
) -> None:
    """Three shards run disjoint lines (index % 3), each with its own checkpoint, into one dir."""
    batch = write_jsonl(tmp_path / "b.jsonl", 7)
    out = tmp_path / "out"
    for index in range(3):
        status, _, _ = cli(
            "batch",
            str(batch),
            "--out",
            str(out),
            "--shard",
            f"{index}/3",
            "-m",
            "gpt-image-2",
            "--no-progress",
            *api,
        )
        assert 0 == status
    prompts = [r.prompt for r in linkai_server.fake.requests]
    assert [f"prompt {i}" for i in (0, 3, 6, 1, 4, 2, 5)] == prompts
    assert 7 == len(list(out.glob("*.png")))
    checkpoints = sorted(p.name for p in out.glob(".linkai-checkpoint*"))
    assert [f".linkai-checkpoint.shard-{i}-of-3.jsonl" for i in range(3)] == checkpoints
    manifests = sorted(p.name for p in out.glob("metadata.shard-*.jsonl"))
    assert [f"metadata.shard-{i}-of-3.jsonl" for i in range(3)] == manifests
    assert 0 == cli("gallery", str(out))[0]
    merged = (out / "metadata.jsonl").read_text().splitlines()
    assert 7 == len(merged)


def test_a_shard_resumes_from_its_own_checkpoint(
    cli: Run, api: list[str], tmp_path: Path, linkai_server: FakeServer
) -> None:
    """Running a shard again sends nothing it already did."""
    batch = write_jsonl(tmp_path / "b.jsonl", 4)
    out = tmp_path / "out"
    for _ in range(2):
        cli(
            "batch",
            str(batch),
            "--out",
            str(out),
            "--shard",
            "1/2",
            "-m",
            "gpt-image-2",
            "--no-progress",
            *api,
        )
    assert ["prompt 1", "prompt 3"] == [r.prompt for r in linkai_server.fake.requests]


def test_batch_with_a_rate_limit_runs(
    cli: Run, api: list[str], tmp_path: Path, linkai_server: FakeServer
) -> None:
    """A paced batch completes every line."""
    batch = write_jsonl(tmp_path / "b.jsonl", 3)
    status, _, _ = cli(
        "batch", str(batch), "--out", str(tmp_path / "o"), "-m", "gpt-image-2",
        "--rate-limit", "50/second", "--no-progress", *api,
    )  # fmt: skip
    assert (0, 3) == (status, len(linkai_server.fake.requests))


def test_limiter_url_needs_a_rate(cli: Run, api: list[str]) -> None:
    """--limiter-url alone is a one-line user error naming what to add."""
    status, _, err = cli(
        "generate", "p", "-m", "gpt-image-2", "--limiter-url", "redis://127.0.0.1:1/0", *api
    )
    assert 1 == status
    assert "add --rate-limit" in err
