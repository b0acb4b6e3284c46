"""docs/batches.md tells the truth: every Python example in it runs, against the fake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "batches.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_has_examples_for_each_topic() -> None:
    """The batches guide shows generate_many, as_completed, progress, checkpoint and overload."""
    joined = "\n".join(BLOCKS)
    for needle in ("generate_many(", "as_completed(", "progress=", "checkpoint=", "fail_randomly"):
        assert needle in joined, needle


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_example_runs(
    number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ```python block of docs/batches.md runs to the end in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[number], f"docs/batches.md example {number + 1}", "exec"), {})
