"""examples/batch.ipynb runs top to bottom on a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import attrs
import nbformat
import pytest
from ipykernel.kernelspec import install
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "examples" / "batch.ipynb"
KERNEL = "python3"
#: The batch cell sends 8 prompts, one of which the fake's content filter refuses.
PROMPTS = 8
SUCCEEDED = 7


@attrs.frozen
class Executed:
    """The notebook after a run: its code cells by id, and the kernel's temp directory."""

    cells: dict[str, nbformat.NotebookNode]
    temp: Path

    def outputs(self, cell_id: str, output_type: str) -> list[nbformat.NotebookNode]:
        """The outputs of one type (``execute_result``, ``stream``, ...) of a cell."""
        return [o for o in self.cells[cell_id].outputs if o.output_type == output_type]

    def html(self, cell_id: str) -> str:
        """The ``text/html`` of the cell's result."""
        (result,) = self.outputs(cell_id, "execute_result")
        return str(result.data["text/html"])


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Executed:
    """Run the notebook once on a python3 kernel of this interpreter, in a scratch environment."""
    root = tmp_path_factory.mktemp("notebook")
    temp = root / "tmp"
    temp.mkdir()
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("LINKAI_")]:
            env.delenv(name)
        # A kernel spec of our own, found first, so the kernel is this venv's Python
        # whatever other kernels the machine has; nothing to set up by hand.
        install(prefix=str(root / "prefix"), kernel_name=KERNEL)
        env.setenv("JUPYTER_PATH", str(root / "prefix" / "share" / "jupyter"))
        env.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        env.setenv("IPYTHONDIR", str(root / "ipython"))
        env.setenv("TMPDIR", str(temp))  # where the notebook's tempfile.mkdtemp() lands
        assert [sys.executable] == KernelSpecManager().get_kernel_spec(KERNEL).argv[:1]
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(
            notebook, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(root)}}
        ).execute()
    return Executed(cells={c.id: c for c in notebook.cells if c.cell_type == "code"}, temp=temp)


def test_committed_notebook_has_no_outputs() -> None:
    """The file in the repository is committed with its outputs cleared."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [([], None)] * len(code) == [(c.outputs, c.execution_count) for c in code]


def test_every_cell_ran_without_error(executed: Executed) -> None:
    """Every code cell ran, in order, and none produced an error."""
    counts = [cell.execution_count for cell in executed.cells.values()]
    assert list(range(1, len(counts) + 1)) == counts
    assert [] == [cell_id for cell_id in executed.cells if executed.outputs(cell_id, "error")]


def test_single_response_renders_as_an_html_grid(executed: Executed) -> None:
    """The response of generate() shows as HTML with its one thumbnail."""
    html = executed.html("single")
    assert 1 == html.count("<img ")
    assert "gpt-image-2" in html


def test_batch_shows_a_progress_bar(executed: Executed) -> None:
    """generate_many(progress=True) shows a tqdm.auto bar: a widget, or text when no ipywidgets."""
    widgets = [
        o for o in executed.outputs("batch", "display_data")
        if "application/vnd.jupyter.widget-view+json" in o.data
    ]  # fmt: skip
    text = "".join(o.text for o in executed.outputs("batch", "stream") if o.name == "stderr")
    assert widgets or f"{PROMPTS}/{PROMPTS}" in text, text


def test_batch_results_render_as_one_grid(executed: Executed) -> None:
    """The batch's results show as one grid: a thumbnail per success, the failure named."""
    html = executed.html("grid")
    assert SUCCEEDED == html.count("<img ")
    assert f"{SUCCEEDED} of {PROMPTS} succeeded" in html
    assert "ContentModerationError" in html


def test_images_are_saved_to_a_temp_directory(executed: Executed) -> None:
    """The save cell wrote the single image and every image of the batch as PNG files."""
    (stdout,) = [o.text for o in executed.outputs("save", "stream") if o.name == "stdout"]
    paths = [Path(line) for line in stdout.splitlines()]
    assert 1 + SUCCEEDED == len(set(paths))
    assert "fox.png" == paths[0].name
    for path in paths:
        assert executed.temp in path.parents
        assert re.fullmatch(r"[\w-]+\.png", path.name)
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
