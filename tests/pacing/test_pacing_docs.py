"""docs/pacing.md covers what it must; tests/test_docs_run.py runs its blocks."""

from __future__ import annotations

import re
from pathlib import Path

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
