"""Every code block of README.md and docs/*.md runs as written, against the fake.

How a block is read (docs/architecture.md, "Code blocks in the docs", says the same):

- ```` ```python ````: a **script**. It runs on its own, as ``python -W error block.py``
  in a fresh interpreter. Nothing carries over from the block before it but files. A script
  whose first line is ``# file: NAME.py`` is also saved as ``NAME.py``, so that later blocks
  (and commands) can import it, as a reader who saved it would.
- ```` ```python ```` whose first line is ``# notebook cell``: a **Jupyter cell**. Top-level
  ``await`` is allowed and a page's cells share one namespace: all the cells of a page run
  in order on one real IPython kernel (nbclient), as the cells of one notebook.
- ```` ```console ````: a **shell session**. Lines starting with ``$ `` are commands (the
  others are their output; with no ``$`` at all, every line is a command), ``\\`` continues
  a line. The ``linkai-images`` commands run (through ``bash``); other programs (``pip``,
  ``curl``, servers that never exit) are shown, not run.
- ```` ```python shown ````, ```` ```console shown ````: a block that needs what no test has
  (a Ray cluster, S3, Redis, other machines, a real key). The page says so in its text; the
  block is shown, not run. Everything a reader can run here must not be marked so.
- Any other info string (``text``, ``json``, none) is output or data, never run.

What a block gets: ``LINKAI_API_KEY`` set to the fake's key and ``LINKAI_BASE_URL`` to a
``FakeServer`` on 127.0.0.1, as after ``python -m linkai_images.testing serve``; nothing
else. A block that needs more says so in a comment and makes it. All the blocks of a page
run in page order in one fresh directory, which starts with the files a reader is told to
have: ``prompts.jsonl`` (three prompts) and ``cat.jpg`` (a small image). A failing block
fails its page with the block's number and output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import nbformat
import pytest
from ipykernel.kernelspec import install
from nbclient import NotebookClient

from linkai_images.testing import DEFAULT_API_KEY, FakeServer, make_png

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CELL_MARK = "# notebook cell"
FILE_MARK = re.compile(r"# file: ([\w.-]+\.py)\n")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
TIMEOUT = 120


@attrs.frozen
class Block:
    """One fenced block: its number on the page (from 1), kind and text."""

    number: int
    kind: str  # "script", "cell", "console" or "other"
    text: str


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, classified by the convention above."""
    found = []
    for number, match in enumerate(FENCE.finditer(page.read_text(encoding="utf-8")), 1):
        words, text = match.group(1).split(), match.group(2)
        info = words[0] if words else ""
        if "shown" in words[1:]:
            kind = "other"
        elif info == "python":
            kind = "cell" if text.startswith(CELL_MARK) else "script"
        elif info == "console":
            kind = "console"
        else:
            kind = "other"
        found.append(Block(number, kind, text))
    return found


def commands_of(block: Block) -> list[str]:
    """The commands of a console block, continuation lines joined."""
    lines = block.text.replace("\\\n", " ").splitlines()
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return [line.strip() for line in lines if line.strip()]


def runnable(command: str) -> list[str]:
    """The parts of a console command (split at ``&&``) run here: the ``linkai-images`` ones."""
    parts = [part.strip() for part in command.split("&&")]
    return [part for part in parts if part.startswith("linkai-images")]


def seed(directory: Path) -> None:
    """The files a page's reader is told to have."""
    lines = [f'{{"prompt": "a lantern, take {n}", "model": "gpt-image-2"}}\n' for n in range(3)]
    (directory / "prompts.jsonl").write_text("".join(lines), encoding="utf-8")
    (directory / "cat.jpg").write_bytes(make_png(8, 8))  # content decides the type, not the name


def run_cells(cells: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run notebook cells in order on a real IPython kernel of this interpreter."""
    prefix = cwd.parent / f"{cwd.name}-kernel"
    install(prefix=str(prefix), kernel_name="python3")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    saved = dict(os.environ)
    os.environ.update(env)
    os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    os.environ["IPYTHONDIR"] = str(prefix / "ipython")
    try:
        NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=TIMEOUT,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def page_id(page: Path) -> str:
    """``README.md`` or ``docs/<name>.md``."""
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_block_of_the_page_runs(
    page: Path, linkai_server: FakeServer, tmp_path: Path
) -> None:
    """The page's scripts, notebook cells and linkai-images commands all run and exit 0."""
    cwd = tmp_path / "page"
    cwd.mkdir()
    seed(cwd)
    env = {
        **os.environ,
        "LINKAI_API_KEY": DEFAULT_API_KEY,
        "LINKAI_BASE_URL": linkai_server.base_url,
    }
    cells = []
    for block in blocks_of(page):
        where = f"{page_id(page)} block {block.number}"
        if block.kind == "script":
            named = FILE_MARK.match(block.text)
            script = cwd / (named.group(1) if named else f"block{block.number}.py")
            script.write_text(block.text, encoding="utf-8")
            done = subprocess.run(
                [sys.executable, "-W", "error", str(script)],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
            )  # fmt: skip
            assert 0 == done.returncode, f"{where} failed:\n{done.stdout}\n{done.stderr}"
        elif block.kind == "cell":
            cells.append(block.text)
        elif block.kind == "console":
            for command in [p for c in commands_of(block) for p in runnable(c)]:
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
                )  # fmt: skip
                assert 0 == done.returncode, f"{where}: {command}\n{done.stdout}\n{done.stderr}"
    if cells:
        run_cells(cells, cwd, env)


def test_the_convention_classifies_blocks(tmp_path: Path) -> None:
    """Scripts, marked cells, console commands and output blocks are told apart."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint(1)\n```\n\n"
        "```python\n# notebook cell\nawait x\n```\n\n"
        "```console\n$ pip install linkai-images\n$ linkai-images models \\\n  --help\nout\n```\n\n"
        "```text\nlinkai-images models\n```\n\n"
        "```console shown\nlinkai-images batch x.jsonl --limiter-url redis://db\n```\n",
        encoding="utf-8",
    )
    blocks = blocks_of(page)
    assert ["script", "cell", "console", "other", "other"] == [b.kind for b in blocks]
    commands = commands_of(blocks[2])
    assert ["pip install linkai-images", "linkai-images models    --help"] == commands
    assert [[], ["linkai-images models    --help"]] == [runnable(c) for c in commands]
    assert ["linkai-images demo"] == runnable("pip install . && linkai-images demo")


DOTTED = re.compile(r"\blinkai_images((?:\.\w+)+)")


#: Pages for users; docs/architecture.md is for contributors, and names the private modules.
USER_PAGES = [p for p in PAGES if p.name != "architecture.md"] + [ROOT / "examples" / "README.md"]


@pytest.mark.parametrize("page", USER_PAGES, ids=page_id)
def test_the_page_names_public_names_only(page: Path) -> None:
    """Every ``linkai_images.X`` a user's page names is exported (no private module or name)."""
    import linkai_images
    import linkai_images.testing

    public = {
        *(f".{name}" for name in linkai_images.__all__),
        ".__all__",
        ".__version__",
        ".testing",
        ".testing.pytest_plugin",
        *(f".testing.{name}" for name in linkai_images.testing.__all__),
    }
    named = {match.group(1) for match in DOTTED.finditer(page.read_text(encoding="utf-8"))}
    assert set() == {n for n in named if not any(n == p or n.startswith(p + ".") for p in public)}
