"""A connection pool over the SDK's HTTP/1.1 connections that never scans them all.

httpcore's own pool re-examines every connection for every queued request each
time one is assigned or released, so its CPU cost per request grows with the
pool: at 500 connections raw httpx spends ~6 ms of CPU per request where the
HTTP exchange needs a tenth of that. This pool keeps a stack of idle
connections per origin: a request pops one (or opens one), and closing its
response pushes it back. Checkout and check-in are O(1); expired connections
are dropped as they are met, and all of them whenever a new one is opened.

Used on trio, and on asyncio when aiohttp is not installed. The protocol work
is ``h1.py``'s: HTTP/1.1 for this SDK's exchanges, checked as h11 checks them,
at a third of httpcore's CPU cost on trio.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

import anyio
import httpx

from .h1 import Connection, RequestFactory, connect, head_prefix, prepare
from .turns import TurnGate

__all__ = ["EAGER_BODY", "Exchange", "PooledTransport", "PostTarget"]

_Origin: TypeAlias = tuple[bytes, bytes, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
#: What ``PooledTransport.post`` returns for an answer read whole: the status, the
#: reason phrase, the raw headers and the body (``aio.Exchange``'s shape).
Exchange: TypeAlias = tuple[int, bytes, Sequence[tuple[bytes, bytes]], bytes]
#: Bodies up to this size, when announced by Content-Length, are read before ``post`` returns.
EAGER_BODY = 1024 * 1024


class PostTarget:
    """Everything about a POST that is the same for every request to one endpoint.

    Built once by ``PooledTransport.target`` from a template request, so that
    ``post`` builds no URL or headers per request.
    """

    __slots__ = ("origin", "prefix", "timeouts")

    def __init__(
        self, origin: _Origin, prefix: bytes, timeouts: Mapping[str, float | None]
    ) -> None:
        self.origin = origin
        self.prefix = prefix
        self.timeouts = timeouts


def _origin(url: httpx.URL, request: RequestFactory) -> _Origin:
    scheme = url.raw_scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(
            f"the URL scheme {url.scheme!r} is not http or https", request=request()
        )
    return (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])


class _ResponseStream(httpx.AsyncByteStream):
    """The body of a pooled response; closing it gives the connection back.

    Its own async iterator (no generator): a response abandoned mid-body leaves
    nothing to finalize.
    """

    __slots__ = ("_connection", "_origin", "_pool", "_request", "_timeout")

    def __init__(
        self,
        pool: PooledTransport,
        origin: _Origin,
        connection: Connection,
        request: httpx.Request,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._connection: Connection | None = connection
        self._request = request
        self._timeout = (request.extensions.get("timeout") or {}).get("read")

    def _sent(self) -> httpx.Request:
        return self._request

    def __aiter__(self) -> _ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        chunk = await connection.next_chunk(self._timeout, self._sent)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool._check_in(self._origin, connection)


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport on pooled HTTP/1.1 connections (asyncio and trio).

    Args:
        max_connections: connections in use at once; one more request waits
            up to the request's ``pool`` timeout, then fails with
            ``httpx.PoolTimeout``.
        keepalive_expiry: seconds an idle connection is kept for reuse.
        ssl_context: TLS settings; default httpx's (certifi's CA bundle).
        library: ``"trio"`` (trio's sockets) or ``"asyncio"`` (anyio's).
        starts: requests begun per turn of the event loop are bounded by this
            gate (``turns.py``), when given.
        slices: upload slices of shared pieces written per turn, across all
            uploads, are bounded by this gate, when given.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        library: str = "asyncio",
        starts: TurnGate | None = None,
        slices: TurnGate | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._library = library
        self._starts = starts
        self._slices = slices
        self._idle: dict[_Origin, list[Connection]] = {}
        self._idle_count = 0
        self._closing: list[Connection] = []
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

        def sent() -> httpx.Request:
            return request

        origin = _origin(request.url, sent)
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout") or {}
        head, body, length, chunked = prepare(request)
        connection = await self._acquire(origin, timeouts, sent)
        try:
            status, reason, version, headers = await connection.exchange(
                head,
                body,
                length,
                chunked,
                timeouts,
                sent,
                bodiless=request.method == "HEAD",
                gate=self._slices,
            )
        except BaseException:
            await self._check_in(origin, connection)
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseStream(self, origin, connection, request),
            extensions={"http_version": version, "reason_phrase": reason},
        )

    def target(self, template: httpx.Request) -> PostTarget:
        """The fixed part of POSTs like ``template`` (URL, headers, timeouts) for ``post``.

        ``Content-Length`` is left out: ``post`` adds each body's own.
        """
        url = template.url
        headers = [
            (name, value)
            for name, value in template.headers.raw
            if name.lower() not in (b"content-length", b"transfer-encoding")
        ]
        return PostTarget(
            _origin(url, lambda: template),
            head_prefix("POST", url, headers),
            template.extensions.get("timeout") or {},
        )

    async def post(
        self,
        target: PostTarget,
        body: Sequence[bytes],
        request: Callable[[Sequence[bytes]], httpx.Request],
    ) -> Exchange | httpx.Response:
        """POST ``body`` (its pieces, sent one after another) to ``target``.

        The lean path of the client's generation calls: no ``httpx.Request``
        or ``httpx.Response`` is built for an answer of known length up to
        ``EAGER_BODY`` that is not encoded (every API answer), which comes back
        as an ``Exchange``. ``request(body)`` builds the ``httpx.Request`` this
        POST stands for, only when one is needed: for an error (raised as the same
        httpx error ``handle_async_request`` raises), or for any other answer,
        returned as an ``httpx.Response`` for httpx to read and decode, as
        ``handle_async_request`` returns it.
        """
        if self._closed:
            raise RuntimeError("the transport is closed")

        def sent() -> httpx.Request:
            return request(body)

        size = sum(map(len, body)) if len(body) != 1 else len(body[0])
        head = target.prefix + b"Content-Length: %d\r\n\r\n" % size
        origin, timeouts = target.origin, target.timeouts
        connection = await self._acquire(origin, timeouts, sent)
        try:
            status, reason, version, headers = await connection.exchange(
                head,
                body[0] if len(body) == 1 else tuple(body),
                size,
                False,
                timeouts,
                sent,
                gate=self._slices,
            )
            content = await connection.small_body(EAGER_BODY, timeouts.get("read"), sent)
        except BaseException:
            await self._check_in(origin, connection)
            raise
        if content is not None:
            await self._check_in(origin, connection)
            return status, reason, headers, content
        built = request(body)
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseStream(self, origin, connection, built),
            extensions={"http_version": version, "reason_phrase": reason},
            request=built,
        )

    async def _acquire(
        self, origin: _Origin, timeouts: Mapping[str, float | None], request: RequestFactory
    ) -> Connection:
        """A connection to ``origin`` (idle or new) and a slot for it, released by ``_check_in``."""
        if self._starts is not None:  # a bounded number of requests begun per loop turn
            await self._starts.enter()
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
                    f"no connection free among {self._max_connections}", request=request()
                ) from None
        try:
            return self._check_out(origin) or await self._connect(origin, timeouts, request)
        except BaseException:
            slots.release()
            raise

    def _check_out(self, origin: _Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.fresh():
                return connection
            self._closing.append(connection)
        return None

    async def _check_in(self, origin: _Origin, connection: Connection) -> None:
        assert self._slots is not None
        self._slots.release()
        if connection.reusable and not self._closed and self._idle_count < self._max_connections:
            connection.idle()
            self._idle.setdefault(origin, []).append(connection)
            self._idle_count += 1
            return
        await connection.aclose()

    async def _connect(
        self, origin: _Origin, timeouts: Mapping[str, float | None], request: RequestFactory
    ) -> Connection:
        await self._drop_expired()
        scheme, host, port = origin
        tls = self._tls() if scheme == b"https" else None
        sni = request().extensions.get("sni_hostname") if tls is not None else None
        return await connect(
            self._library,
            host.decode("ascii"),
            port,
            request=request,
            timeout=timeouts.get("connect"),
            keepalive_expiry=self._keepalive_expiry,
            tls=tls,
            server_hostname=sni if isinstance(sni, str) else None,
        )

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def _drop_expired(self) -> None:
        closing = self._closing
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.fresh()]
            closing.extend(c for c in idle if c not in keep)
            self._idle_count -= len(idle) - len(keep)
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]
        await self._close_forgotten()

    async def _close_forgotten(self) -> None:
        closing, self._closing = self._closing, []
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
