"""The README tells the truth: its quick start is what CI runs, its examples run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from linkai_images.testing import DEFAULT_API_KEY, FakeServer

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
CONSOLE = re.findall(r"```console\n(.*?)```", README, re.DOTALL)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    """The two quick-start commands exist and .ci/run runs the test command verbatim."""
    install_and_demo, run_tests = CONSOLE[0].strip(), CONSOLE[1].strip()
    assert "pip install . && linkai-images demo" == install_and_demo
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert run_tests in ci


def test_readme_has_runnable_examples() -> None:
    """The README shows asyncio, trio, blocking, batch, retry and fake examples."""
    joined = "\n".join(BLOCKS)
    for needle in ("asyncio.run", "trio.run", "ImageClient(", "generate_many", "RetryPolicy",
                   "FakeLinkAI"):  # fmt: skip
        assert needle in joined, needle


def test_every_python_example_runs_against_the_fake(
    linkai_server: FakeServer, tmp_path: Path
) -> None:
    """Each ```python block of the README runs, in order, in one directory, and exits 0."""
    env = {
        **os.environ,
        "LINKAI_API_KEY": DEFAULT_API_KEY,
        "LINKAI_BASE_URL": linkai_server.base_url,
    }
    for number, block in enumerate(BLOCKS, 1):
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert 0 == done.returncode, f"README example {number} failed:\n{done.stderr}"
    assert (tmp_path / "fox.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "ramen.png").exists()


@pytest.mark.parametrize("link", re.findall(r"\]\(((?:docs|examples|benchmarks)/[^)]+)\)", README))
def test_linked_files_exist(link: str) -> None:
    """Every file the README links to is in the repository."""
    assert (ROOT / link).exists(), link
