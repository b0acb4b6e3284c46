"""Shared fixtures: both async backends, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
