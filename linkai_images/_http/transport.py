"""Transport choice: the connection pool under the client's httpx API.

The SDK is written against httpx; what moves the bytes is chosen at the first
request, by the async library that is running it:

- asyncio with aiohttp installed (the ``aiohttp`` extra): ``AiohttpTransport``
  (``_aiohttp.py``), an aiohttp session behind the httpx transport interface.
  It is the cheapest measured: about a tenth of raw httpx's CPU per request
  at 500-way concurrency (``docs/performance.md``).
- trio, or asyncio without aiohttp: ``PooledTransport`` (``pool.py``), the
  SDK's HTTP/1.1 connections (``h1.py``; trio's own sockets on trio) in a pool
  whose checkout does not scan every connection, unlike httpcore's.

The client bounds its in-flight requests itself (``max_concurrency``), so the
pool holds that many connections plus the downloads' own: a request that got
past the bound never waits for a connection, and a pool timeout cannot happen
whatever the fan-out.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

import httpx

from .._exceptions import LinkAIError
from .turns import SLICES_PER_TURN, STARTS_PER_TURN, TurnGate

if TYPE_CHECKING:
    from .aio import AiohttpTransport
    from .pool import PooledTransport

__all__ = [
    "DOWNLOAD_CONNECTIONS",
    "HTTP_BACKENDS",
    "AutoTransport",
    "HTTPBackend",
    "build_transport",
    "current_async_library",
]

#: Connections kept beside the generation bound for image downloads.
DOWNLOAD_CONNECTIONS = 16
#: Seconds an idle connection is kept for reuse.
KEEPALIVE_EXPIRY = 30.0

#: A transport's lean POST to one endpoint, no ``httpx.Request`` or ``Response`` built unless
#: needed (``AiohttpTransport.post``, ``PooledTransport.post``): ``post(body pieces, a builder
#: of the request of a body)`` gives the status, reason, raw headers and body, or a response
#: still to be read.
LeanPost = Callable[
    [Sequence[bytes], Callable[[Sequence[bytes]], httpx.Request]],
    Awaitable["tuple[int, bytes, Sequence[tuple[bytes, bytes]], bytes] | httpx.Response"],
]

#: What moves the bytes: ``"auto"`` (aiohttp on asyncio when installed, else
#: the pool), ``"aiohttp"`` (asyncio only) or ``"httpx"`` (the pool, any backend).
HTTPBackend = Literal["auto", "aiohttp", "httpx"]
HTTP_BACKENDS: tuple[HTTPBackend, ...] = ("auto", "aiohttp", "httpx")


def current_async_library() -> str | None:
    """``"asyncio"`` or ``"trio"``: the library running this thread's task; ``None`` outside one."""
    try:
        import sniffio
    except ImportError:  # sniffio is optional: ask trio and asyncio directly
        trio = sys.modules.get("trio")
        if trio is not None and trio.lowlevel.in_trio_run():
            return "trio"
        asyncio = sys.modules.get("asyncio")
        if asyncio is None:  # never imported: no asyncio loop can be running
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return "asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


@functools.cache
def _aiohttp_installed() -> bool:
    """Whether aiohttp 3.10+ is installed, checked without importing it."""
    # 3.10 added ConnectionTimeoutError / SocketTimeoutError, without which a
    # connect timeout cannot be told from a read timeout (never sent vs maybe billed).
    if importlib.util.find_spec("aiohttp") is None:
        return False
    try:
        major, minor = (int(part) for part in importlib.metadata.version("aiohttp").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (3, 10)


class AutoTransport(httpx.AsyncBaseTransport):
    """Picks and builds the real transport at the first request.

    Args:
        max_connections: the pool size.
        backend: ``"auto"``, ``"aiohttp"`` or ``"httpx"`` (see ``HTTPBackend``).
        keepalive_expiry: seconds an idle connection is kept for reuse.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        backend: HTTPBackend = "auto",
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self.max_connections = max_connections
        self.backend = backend
        self.keepalive_expiry = keepalive_expiry
        self._inner: httpx.AsyncBaseTransport | None = None
        self._aiohttp: AiohttpTransport | None = None
        self._pool: PooledTransport | None = None
        self._closed = False
        if backend != "httpx" and current_async_library() == "asyncio" and _aiohttp_installed():
            # Built inside a running loop: import aiohttp now (about 0.1 s) rather
            # than in the first request. The choice itself still waits for that
            # request, which may run on another loop (the blocking client's).
            from . import aio  # noqa: F401

    def __repr__(self) -> str:
        chosen = type(self._inner).__name__ if self._inner is not None else "not chosen yet"
        return (
            f"{type(self).__name__}(backend={self.backend!r}, "
            f"max_connections={self.max_connections}, transport={chosen})"
        )

    @property
    def selected(self) -> httpx.AsyncBaseTransport | None:
        """The transport in use, once the first request has chosen it."""
        return self._inner

    def lean_post(self, template: httpx.Request) -> LeanPost | None:
        """The chosen transport's lean POST to ``template``'s endpoint (chosen now if not yet),
        when it has one (the aiohttp transport and the pool do)."""
        if self._inner is None:
            self._choose()
        if self._aiohttp is not None:
            return functools.partial(self._aiohttp.post, self._aiohttp.target(template))
        if self._pool is not None:
            return functools.partial(self._pool.post, self._pool.target(template))
        return None  # pragma: no cover - every transport chosen here has one

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the chosen transport (choosing it the first time)."""
        inner = self._inner or self._choose()
        return await inner.handle_async_request(request)

    def _choose(self) -> httpx.AsyncBaseTransport:
        if self._closed:
            raise RuntimeError("the transport is closed")
        library = current_async_library() or "asyncio"
        inner: httpx.AsyncBaseTransport
        if library == "asyncio" and self.backend != "httpx" and _aiohttp_installed():
            from .aio import AiohttpTransport

            inner = self._aiohttp = AiohttpTransport(
                max_connections=self.max_connections, keepalive_expiry=self.keepalive_expiry
            )
        elif self.backend == "aiohttp":
            raise LinkAIError(
                f"http_backend='aiohttp' needs asyncio, but this client runs on {library}; "
                "use 'auto' or 'httpx'"
            )
        else:
            from .pool import PooledTransport

            inner = self._pool = PooledTransport(
                max_connections=self.max_connections,
                keepalive_expiry=self.keepalive_expiry,
                library=library,
                starts=TurnGate(STARTS_PER_TURN),
                slices=TurnGate(SLICES_PER_TURN),
            )
        self._inner = inner
        return inner

    async def aclose(self) -> None:
        """Close the chosen transport and its connections."""
        self._closed = True
        if self._inner is not None:
            await self._inner.aclose()


def build_transport(
    max_concurrency: int, backend: HTTPBackend = "auto"
) -> httpx.AsyncBaseTransport:
    """The transport of a client that keeps at most ``max_concurrency`` requests in flight.

    Raises:
        ValueError: ``backend`` is not one of ``HTTP_BACKENDS``.
        LinkAIError: ``backend="aiohttp"`` without aiohttp installed.
    """
    if backend not in HTTP_BACKENDS:
        raise ValueError(
            f"http_backend {backend!r} is not known; choose one of {', '.join(HTTP_BACKENDS)}"
        )
    if backend == "aiohttp" and not _aiohttp_installed():
        raise LinkAIError(
            "http_backend='aiohttp' needs aiohttp 3.10 or later: "
            "pip install 'linkai-images[aiohttp]'"
        )
    return AutoTransport(max_connections=max_concurrency + DOWNLOAD_CONNECTIONS, backend=backend)
