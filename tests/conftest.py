"""Shared fixtures: both async backends, a clean environment, the fake, a client on it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from linkai_images import AsyncImageClient, set_testing
from linkai_images.testing import FakeLinkAI, FakeServer

#: The fuzz tests' profile (``settings(settings.get_profile("fuzz"))``): 1,000 examples
#: each, here and in CI; no deadline, since a loopback round trip on a loaded machine is
#: not the code under test; one fixture (a server, a fake) serves every example.
settings.register_profile(
    "fuzz",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

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
def server(fake: FakeLinkAI) -> Iterator[FakeServer]:
    """``fake`` served on loopback (a module that overrides ``fake`` gets its own served)."""
    with fake.serve() as running:
        yield running


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[AsyncImageClient]:
    """A client on the served fake: ``gpt-image-2`` by default, at most 8 requests in flight."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        max_concurrency=8,
    ) as running:
        yield running


@pytest.fixture
def no_backoff() -> Iterator[None]:
    """Retries never sleep (``pytestmark = pytest.mark.usefixtures("no_backoff")``)."""
    with set_testing():
        yield
