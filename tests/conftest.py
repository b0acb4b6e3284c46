"""Shared fixtures: both async backends, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from linkai_images.testing import FakeLinkAI, FakeServer

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Run every async test on asyncio and on trio."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Each test starts without LINKAI_* variables and leaves the environment as it found it."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("LINKAI_"):
            del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def fake(linkai_fake: FakeLinkAI) -> FakeLinkAI:
    """A fresh fake platform (the installed plugin's ``linkai_fake``)."""
    return linkai_fake


@pytest.fixture
def server(linkai_server: FakeServer) -> FakeServer:
    """The fake served on loopback (the installed plugin's ``linkai_server``)."""
    return linkai_server
