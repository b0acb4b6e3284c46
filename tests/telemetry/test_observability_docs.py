"""docs/observability.md tells the truth: its console example runs and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "observability.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_console_example_prints_spans_and_metrics_but_no_prompt(tmp_path: Path) -> None:
    """The example prints the call, attempt and batch spans and the metrics, never a prompt."""
    [example] = BLOCKS
    # A process of its own: OpenTelemetry's exporters print and keep threads of their own.
    run = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert ("", 0) == (run.stderr, run.returncode)
    names = re.findall(r'^    "name": "([^"]+)"', run.stdout, re.MULTILINE)
    expected = ["POST"] * 3 + ["generate_content gpt-image-2"] * 3 + ["generate_many"]
    assert expected == sorted(names)  # the batch's two calls may interleave
    assert "generate_many" == names[-1]
    assert "gen_ai.client.operation.duration" in run.stdout
    shown = {prompt: prompt in run.stdout for prompt in ("a lighthouse", "a fox", "an owl")}
    assert dict.fromkeys(shown, False) == shown
