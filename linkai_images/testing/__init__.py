"""A faithful fake of the LinkAI image API, for testing code that calls it.

:class:`FakeLinkAI` implements the platform's rules (authentication, body and
field validation against the model table, 402/406/409 triggers), answers
like the platform, and serves real PNG files from a fake CDN on another
origin. Faults (:class:`Fault`) are injected per prompt, for the next
requests, or at a seeded random rate; every request is recorded.

Serve it in process, with no sockets::

    fake = FakeLinkAI()
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        ...  # requests to fake.base_url

or on loopback, from any thread and any event loop::

    with FakeLinkAI().serve() as server:
        ...  # requests to server.base_url

The pytest fixtures ``linkai_fake`` and ``linkai_server`` live in
``linkai_images.testing.pytest_plugin``; ``python -m linkai_images.testing
serve`` runs the server from the command line.
"""

from __future__ import annotations

from ._app import (
    DEFAULT_API_KEY,
    DEFAULT_BANNED_WORDS,
    DEFAULT_RECORD_LIMIT,
    DEFAULT_SCALE,
    FakeLinkAI,
    Latency,
)
from ._faults import Fault
from ._png import make_png, png_size
from ._records import RecordedCdnRequest, RecordedRequest, ReferenceImage
from ._server import FakeServer
from ._transport import FakeTransport

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BANNED_WORDS",
    "DEFAULT_RECORD_LIMIT",
    "DEFAULT_SCALE",
    "FakeLinkAI",
    "FakeServer",
    "FakeTransport",
    "Fault",
    "Latency",
    "RecordedCdnRequest",
    "RecordedRequest",
    "ReferenceImage",
    "make_png",
    "png_size",
]

# Public names report the public module, so tracebacks and reprs point users to it.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("linkai_images.testing._"):
        _obj.__module__ = __name__
del _name, _obj
