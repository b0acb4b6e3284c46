"""docs/pacing.md tells the truth: every Python example in it runs, against the fake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "pacing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_covers_each_feature() -> None:
    """The guide shows rate limits, headers, adaptive concurrency and the shared limiter."""
    joined = "\n".join(BLOCKS)
    for needle in (
        "rate_limit=",
        "model_rate_limits=",
        "rate_limit_headers",
        "adaptive_concurrency=True",
        "concurrency_limit(",
        "limiter_url=",
    ):
        assert needle in joined, needle


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_example_runs(
    number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ```python block of docs/pacing.md runs to the end in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[number], f"docs/pacing.md example {number + 1}", "exec"), {})
