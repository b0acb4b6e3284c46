"""pytest fixtures for testing code against the fake LinkAI API.

Installing ``linkai-images`` registers this plugin (a ``pytest11`` entry point
named after this module): the fixtures are there in every pytest run. Naming it
again (``-p linkai_images.testing.pytest_plugin``, or ``pytest_plugins = [...]``
in a ``conftest.py``) does nothing more; it is how to load it under
``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``. ``-p no:linkai_images.testing.pytest_plugin``
turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._app import FakeLinkAI
from ._server import FakeServer

__all__ = ["linkai_fake", "linkai_server"]


@pytest.fixture
def linkai_fake() -> FakeLinkAI:
    """A fresh :class:`~linkai_images.testing.FakeLinkAI` with the default configuration.

    Configure it in the test (``linkai_fake.credits = 0``,
    ``linkai_fake.fail(...)``) and serve it with ``linkai_fake.transport()``,
    or through the ``linkai_server`` fixture.

    Returns:
        The fake.
    """
    return FakeLinkAI()


@pytest.fixture
def linkai_server(linkai_fake: FakeLinkAI) -> Iterator[FakeServer[FakeLinkAI]]:
    """The ``linkai_fake`` fixture served on loopback for the test's duration.

    Works in sync tests and in async tests on any event loop: the server has
    its own thread. ``linkai_server.base_url`` is the API base URL,
    ``linkai_server.fake`` the fake (the same object as ``linkai_fake``).

    Yields:
        The running server.
    """
    with linkai_fake.serve() as server:
        yield server
