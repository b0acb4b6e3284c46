"""docs/batches.md covers what it must; tests/test_docs_run.py runs its blocks."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "batches.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_has_examples_for_each_topic() -> None:
    """The batches guide shows generate_many, as_completed, progress, checkpoint and overload."""
    joined = "\n".join(BLOCKS)
    for needle in ("generate_many(", "as_completed(", "progress=", "checkpoint=", "fail_randomly"):
        assert needle in joined, needle
