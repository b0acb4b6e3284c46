"""A connection pool over httpcore's HTTP/1.1 connections that never scans them all.

httpcore's own pool re-examines every connection for every queued request each
time one is assigned or released, so its CPU cost per request grows with the
pool: at 500 connections raw httpx spends ~6 ms of CPU per request where the
HTTP exchange needs a tenth of that. This pool keeps a stack of idle
connections per origin: a request pops one (or opens one), and closing its
response pushes it back. Checkout and check-in are O(1); expired connections
are dropped as they are met, and all of them whenever a new one is opened.

Used on trio, and on asyncio when aiohttp is not installed. Protocol work
stays httpcore's (h11), so behaviour on the wire matches httpx's own.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import anyio
import httpcore
import httpx

__all__ = ["PooledTransport"]

_Origin: TypeAlias = tuple[bytes, bytes, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

#: httpcore errors and the httpx errors they become (the same names, one to one).
_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProxyError: httpx.ProxyError,
}


def _map_error(exc: Exception, request: httpx.Request) -> httpx.TransportError | None:
    for cls in type(exc).__mro__:
        target = _ERRORS.get(cls)
        if target is not None:
            return target(str(exc) or type(exc).__name__, request=request)
    return None


class _ResponseStream(httpx.AsyncByteStream):
    """The body of a pooled response; closing it gives the connection back."""

    __slots__ = ("_connection", "_origin", "_pool", "_request", "_response")

    def __init__(
        self,
        pool: PooledTransport,
        origin: _Origin,
        connection: httpcore.AsyncHTTP11Connection,
        response: httpcore.Response,
        request: httpx.Request,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._connection: httpcore.AsyncHTTP11Connection | None = connection
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_stream():
                yield chunk
        except Exception as exc:
            mapped = _map_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await self._response.aclose()
        finally:
            await self._pool._check_in(self._origin, connection)


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport on pooled httpcore HTTP/1.1 connections (asyncio and trio).

    Args:
        max_connections: connections in use at once; one more request waits
            up to the request's ``pool`` timeout, then fails with
            ``httpx.PoolTimeout``.
        keepalive_expiry: seconds an idle connection is kept for reuse.
        ssl_context: TLS settings; default httpx's (certifi's CA bundle).
        network_backend: httpcore's socket layer; default ``AnyIOBackend``.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._backend = network_backend or httpcore.AnyIOBackend()
        self._idle: dict[_Origin, list[httpcore.AsyncHTTP11Connection]] = {}
        self._idle_count = 0
        self._closing: list[httpcore.AsyncHTTP11Connection] = []
        self._slots: anyio.Semaphore | None = None
        self._closed = False

    @property
    def idle_connections(self) -> int:
        """Open connections waiting for a request."""
        return self._idle_count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on an idle connection to its origin, or a new one."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"the URL scheme {url.scheme!r} is not http or https", request=request
            )
        origin = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        timeouts = request.extensions.get("timeout") or {}
        slots = self._slots
        if slots is None:
            slots = self._slots = anyio.Semaphore(self._max_connections)
        try:
            slots.acquire_nowait()
        except anyio.WouldBlock:
            # Only when more requests than connections run at once; the client's
            # own bound keeps this off the common path.
            with anyio.move_on_after(timeouts.get("pool")) as waited:
                await slots.acquire()
            if waited.cancelled_caught:
                raise httpx.PoolTimeout(
                    f"no connection free among {self._max_connections}", request=request
                ) from None
        try:
            connection = self._check_out(origin) or await self._connect(origin, request)
        except BaseException:
            slots.release()
            raise
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await connection.handle_async_request(core_request)
        except BaseException as exc:
            await self._check_in(origin, connection)
            if isinstance(exc, Exception):
                mapped = _map_error(exc, request)
                if mapped is not None:
                    raise mapped from exc
            raise
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_ResponseStream(self, origin, connection, response, request),
            extensions=response.extensions,
        )

    def _check_out(self, origin: _Origin) -> httpcore.AsyncHTTP11Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_available() and not connection.has_expired():
                return connection
            self._forget(connection)
        return None

    async def _check_in(self, origin: _Origin, connection: httpcore.AsyncHTTP11Connection) -> None:
        assert self._slots is not None
        self._slots.release()
        if connection.is_idle() and not connection.is_closed():
            if not self._closed and self._idle_count < self._max_connections:
                self._idle.setdefault(origin, []).append(connection)
                self._idle_count += 1
                return
            with anyio.CancelScope(shield=True):
                await connection.aclose()

    def _forget(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        # An expired connection is idle: closing its socket needs no I/O wait.
        self._closing.append(connection)

    async def _connect(
        self, origin: _Origin, request: httpx.Request
    ) -> httpcore.AsyncHTTP11Connection:
        await self._drop_expired()
        scheme, host, port = origin
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        timeout = timeouts.get("connect")
        try:
            stream = await self._backend.connect_tcp(host.decode("ascii"), port, timeout=timeout)
            if scheme == b"https":
                try:
                    sni = request.extensions.get("sni_hostname") or host.decode("ascii")
                    stream = await stream.start_tls(
                        self._tls(), server_hostname=sni, timeout=timeout
                    )
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()
                    raise
        except Exception as exc:
            mapped = _map_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        return httpcore.AsyncHTTP11Connection(
            origin=httpcore.Origin(scheme, host, port),
            stream=stream,
            keepalive_expiry=self._keepalive_expiry,
        )

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def _drop_expired(self) -> None:
        closing = self._closing
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.is_available() and not c.has_expired()]
            closing.extend(c for c in idle if c not in keep)
            self._idle_count -= len(idle) - len(keep)
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]
        await self._close_forgotten()

    async def _close_forgotten(self) -> None:
        closing, self._closing = self._closing, []
        with anyio.CancelScope(shield=True):
            for connection in closing:
                await connection.aclose()

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close as their responses do."""
        self._closed = True
        for idle in self._idle.values():
            self._closing.extend(idle)
        self._idle.clear()
        self._idle_count = 0
        await self._close_forgotten()
