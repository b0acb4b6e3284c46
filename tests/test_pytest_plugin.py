"""The pytest plugin works as docs/testing.md says: installed is registered; naming it is harmless.

Each case runs pytest in a child process that sees the package as an installation of this
checkout would: a ``dist-info`` written from ``pyproject.toml`` (its ``pytest11`` entry
points) stands first on the path, and hides any other installation of the same project
(one made earlier from another checkout), as a fresh ``pip install`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import linkai_images

ROOT = Path(__file__).parent.parent
#: Runs pytest with one distribution per project name: the first on the path, ours.
PYTEST = """
import importlib.metadata, sys
everything = importlib.metadata.distributions

def distributions(**kwargs):
    seen = set()
    for dist in everything(**kwargs):
        if dist.metadata["Name"] not in seen:
            seen.add(dist.metadata["Name"])
            yield dist

importlib.metadata.distributions = distributions
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""
USES_FIXTURES = textwrap.dedent(
    """
    def test_fixtures(linkai_fake, linkai_server):
        assert linkai_server.fake is linkai_fake
    """
)


def installed(site: Path) -> None:
    """Write the package's metadata, entry points from pyproject.toml, into ``site``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the dev extra installs tomli on 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version = linkai_images.__version__  # pyproject reads it from linkai_images/_version.py
    info = site / f"linkai_images-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n",
        encoding="utf-8",
    )
    lines = ["[pytest11]"]
    lines += [f"{name} = {value}" for name, value in project["entry-points"]["pytest11"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("options", "conftest"),
    [
        pytest.param([], "", id="installed-only"),
        pytest.param(["-p", "linkai_images.testing.pytest_plugin"], "", id="dash-p"),
        pytest.param([], 'pytest_plugins = ["linkai_images.testing.pytest_plugin"]\n',
                     id="pytest_plugins"),
    ],
)  # fmt: skip
def test_the_fixtures_are_there_however_the_plugin_is_named(
    options: list[str], conftest: str, tmp_path: Path
) -> None:
    """Installed, the plugin is loaded; -p or pytest_plugins naming it again do no harm."""
    site, project = tmp_path / "site", tmp_path / "project"
    installed(site)
    project.mkdir()
    (project / "test_it.py").write_text(USES_FIXTURES, encoding="utf-8")
    (project / "conftest.py").write_text(conftest, encoding="utf-8")
    (project / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    done = subprocess.run(
        [sys.executable, "-c", PYTEST, "-q", "-p", "no:cacheprovider", *options, str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "1 passed" in done.stdout
