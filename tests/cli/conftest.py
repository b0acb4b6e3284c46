"""Fixtures of the command-line tests: the CLI run in process, pointed at the loopback fake."""

from __future__ import annotations

import pytest
from helpers import Run

from linkai_images._cli.main import main
from linkai_images.testing import FakeServer


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli(*args)`` runs ``main(args)`` and returns (status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def api(linkai_server: FakeServer) -> list[str]:
    """The options pointing the CLI at the loopback fake."""
    return ["--base-url", linkai_server.base_url, "--api-key", linkai_server.fake.api_key]
