"""An httpx transport over an aiohttp session: asyncio's fastest pool under our httpx API.

Hand-written rather than taken from the ``httpx-aiohttp`` package, for two
reasons. That package maps every ``aiohttp.ClientConnectionError`` to
``httpx.ConnectTimeout``, including a server that disconnects *after* the
request was written; the SDK's error boundary (``_http.py``) reads
``ConnectTimeout`` as "never sent" and would retry a generation the platform
may already be billing. And it wraps each body chunk in its own error-mapping
context, CPU that a JSON answer arriving in one piece does not need.

The mapping here follows when aiohttp raises what: connection-establishment
failures (``ClientConnectorError`` and its subclasses, ``ConnectionTimeoutError``,
a bad URL) mean nothing was sent; everything else happens once a connection
was handed to the request and may follow a written request, so it maps to
``ReadTimeout`` / ``RemoteProtocolError`` / ``WriteError`` / ``ReadError``.

aiohttp has no write timeout; httpx's ``write`` is not enforced here (the read
timeout still bounds a stalled exchange). aiohttp is imported by this module
only, and this module only when the first request runs on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
import aiohttp.abc
import aiohttp.payload
import httpx
import yarl

from .stream import WRITE_SLICE, PiecesStream
from .turns import STARTS_PER_TURN, TurnGate

__all__ = ["AiohttpTransport", "Exchange", "PostTarget"]

#: A small answer read in full by ``AiohttpTransport.post``: status, reason, raw headers, body.
Exchange = tuple[int, bytes, tuple[tuple[bytes, bytes], ...], bytes]

#: Body chunks handed to httpx per read while streaming.
_READ_CHUNK = 256 * 1024
#: Bodies up to this size, when announced by Content-Length, are read before returning.
_EAGER_BODY = 1024 * 1024
#: Body slices sent per turn of the event loop, across all uploads of a transport.
#: 4 against 8, side by side (bench_refimg.py shared, median of 5): own loop lag 12.4
#: against 14.0 ms, CPU 1.68 against 1.89 s, wall 3.47 against 3.69 s.
_SLICES_PER_TURN = 4
#: Headers aiohttp adds to a request that lacks them.
_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")
#: Distinct timeout settings remembered as ``aiohttp.ClientTimeout`` objects.
_TIMEOUT_CACHE = 32


def _map_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error for an aiohttp one, keeping "never sent" apart from "maybe sent"."""
    message = str(exc) or type(exc).__name__
    # Raised while acquiring or opening a connection, before any byte was written.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if type(exc) is aiohttp.ClientConnectorError:
            # aiohttp's own text names "ssl:default" even for plain http; say what was tried.
            message = f"cannot connect to {request.url.host}:{exc.port}: {exc.os_error}"
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    # From here on the request may have been written, in part or whole.
    if isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError and any other timeout
        return httpx.ReadTimeout(message, request=request)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return httpx.WriteError(message, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.ReadError(message, request=request)
    return None


def _text_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The headers as text for aiohttp, which writes them back as UTF-8.

    Decoding the raw bytes as UTF-8 round-trips them exactly, and is cheaper
    than httpx's ``multi_items()``, which re-detects the encoding each call.
    """
    try:
        return [(k.decode(), v.decode()) for k, v in headers.raw]
    except UnicodeDecodeError:
        return headers.multi_items()


class _ResponseStream(httpx.AsyncByteStream):
    """An aiohttp response body as an httpx stream; closing it frees the connection."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.read(_READ_CHUNK):
                yield chunk
        except Exception as exc:
            mapped = _map_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        # Returns a fully read connection to the pool; closes one that is not.
        self._response.release()


class _PiecesPayload(aiohttp.payload.Payload):
    """A ``PiecesStream`` as an aiohttp payload: the pieces written slice by slice, never joined.

    Each slice is a ``memoryview`` of a shared piece; aiohttp waits for the
    socket to drain between slices, so at most one slice per connection is
    ever copied into the transport's buffer.

    A socket that does not fill (on loopback the kernel takes megabytes at
    once) would let a whole body go out in one turn of the event loop, and
    64 uploads side by side in the same turn (40-100 ms measured, about 1 ms
    per MiB). So every slice takes a slot of the transport's ``turns``
    semaphore, given back at the next turn: at most ``_SLICES_PER_TURN``
    slices (1 MiB) leave per turn, whatever the number of uploads.
    """

    _autoclose = True  # bytes in memory: nothing to close

    def __init__(self, stream: PiecesStream, turns: asyncio.Semaphore) -> None:
        super().__init__(stream.pieces, content_type=None)
        self._size = self._total = stream.size
        self._turns = turns

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._value).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        left = self._total if content_length is None else content_length
        turns = self._turns
        release_soon = asyncio.get_running_loop().call_soon
        for piece in self._value:
            view = memoryview(piece)
            for start in range(0, len(view), WRITE_SLICE):
                if left <= 0:
                    return
                chunk = view[start : start + min(WRITE_SLICE, left)]
                left -= len(chunk)
                await turns.acquire()
                release_soon(turns.release)
                await writer.write(chunk)


def _reason(response: aiohttp.ClientResponse) -> bytes:
    return (response.reason or "").encode("ascii", "replace")


def _extensions(response: aiohttp.ClientResponse) -> dict[str, bytes]:
    """The extensions httpx's own transports put on a response."""
    return {"http_version": b"HTTP/1.1", "reason_phrase": _reason(response)}


async def _body(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


class PostTarget:
    """Everything about a POST that is the same for every request to one endpoint.

    Built once by ``AiohttpTransport.target`` from a template request, so that
    ``post`` converts no URL, header or timeout per request.
    """

    __slots__ = ("headers", "skip", "ssl", "timeout", "url")

    def __init__(
        self,
        url: yarl.URL,
        headers: list[tuple[str, str]],
        skip: list[str] | None,
        timeout: aiohttp.ClientTimeout,
        ssl: ssl.SSLContext | bool,
    ) -> None:
        self.url = url
        self.headers = headers
        self.skip = skip
        self.timeout = timeout
        self.ssl = ssl


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one ``aiohttp.ClientSession``.

    The session is created at the first request, inside the running loop, and
    closed by ``aclose``. httpx above it keeps doing redirects, cookies,
    authentication and content decoding: aiohttp is asked for none of them.

    Args:
        max_connections: the size of the connection pool.
        keepalive_expiry: seconds an idle connection is kept for reuse.
        ssl_context: TLS settings; default httpx's (certifi's CA bundle).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._forgotten: weakref.finalize[[aiohttp.BaseConnector], AiohttpTransport] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turns = asyncio.Semaphore(_SLICES_PER_TURN)
        # Requests begun per turn of the event loop (turns.py): 64 answers arriving
        # together would otherwise start 64 requests in one turn.
        self._starts = TurnGate(STARTS_PER_TURN)
        self._closed = False
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, yarl.URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the transport is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            # A session's connections belong to the loop that opened them.
            raise RuntimeError(
                "this client's connections belong to another event loop; "
                "create one client per event loop"
            )
        self._loop = loop
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
        )
        # A client nobody closed would make aiohttp log "Unclosed connector" when
        # collected or at exit: close its sockets then, quietly, instead.
        self._forgotten = weakref.finalize(self, _close_quietly, connector)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps cookies, if anyone does
            auto_decompress=False,  # httpx decodes Content-Encoding itself
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,  # like httpx with an explicit transport: no proxy variables
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or {}
        connect = given.get("connect")
        pool = given.get("pool")
        key = (connect, given.get("read"), pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            # aiohttp's ``connect`` covers the wait for a free connection plus
            # opening one; ``sock_connect`` the opening alone.
            acquire = None if connect is None or pool is None else connect + pool
            timeout = aiohttp.ClientTimeout(
                total=None, connect=acquire, sock_connect=connect, sock_read=key[1]
            )
            if len(self._timeouts) >= _TIMEOUT_CACHE:
                self._timeouts.clear()
            self._timeouts[key] = timeout
        return timeout

    def _tls(self) -> ssl.SSLContext:
        # Built at the first https request only: loading the CA bundle costs
        # tens of milliseconds that a plain-http base URL never needs.
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _url(self, request: httpx.Request) -> yarl.URL:
        raw = str(request.url)
        url = self._urls.get(raw)
        if url is None:
            url = yarl.URL(raw, encoded=True)  # httpx has already percent-encoded it
            if len(self._urls) >= _TIMEOUT_CACHE:
                self._urls.clear()
            self._urls[raw] = url
        return url

    def target(self, template: httpx.Request) -> PostTarget:
        """The fixed part of POSTs like ``template`` (its URL, headers and timeouts) for ``post``.

        ``Content-Length`` is left out: ``post`` adds each body's own.
        """
        headers = [
            (name, value)
            for name, value in _text_headers(template.headers)
            if name.lower() != "content-length"
        ]
        skip = [name for name in _AUTO_HEADERS if name not in template.headers] or None
        tls = self._tls() if template.url.scheme == "https" else True
        return PostTarget(self._url(template), headers, skip, self._timeout(template), tls)

    async def post(
        self,
        target: PostTarget,
        body: Sequence[bytes],
        request: Callable[[Sequence[bytes]], httpx.Request],
    ) -> Exchange | httpx.Response:
        """POST ``body`` (its pieces, sent one after another) to ``target``.

        The lean path of the client's generation calls: no ``httpx.Request``
        or ``httpx.Response`` is built for an answer of known length up to
        ``_EAGER_BODY`` (every API answer), which comes back as an
        ``Exchange``. ``request(body)`` builds the ``httpx.Request`` this POST
        stands for, only when one is needed: for an error (raised as the
        same httpx error ``handle_async_request`` raises), or for a large,
        unsized or compressed answer, returned as an ``httpx.Response`` for
        httpx to read and decode, as ``handle_async_request`` returns it.
        """
        await self._starts.enter()
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._open()
        data: bytes | _PiecesPayload
        if len(body) == 1:
            data = body[0]
            size = len(data)
        else:
            pieces = PiecesStream(body)
            data, size = _PiecesPayload(pieces, self._turns), pieces.size
        try:
            response = await session.request(
                "POST",
                target.url,
                headers=[*target.headers, ("Content-Length", str(size))],
                data=data,
                skip_auto_headers=target.skip,
                allow_redirects=False,
                timeout=target.timeout,
                ssl=target.ssl,
            )
            length = response.content_length
            stream: httpx.AsyncByteStream
            if length is None or length > _EAGER_BODY:
                sent = request(body)
                stream = _ResponseStream(response, sent)
            else:
                try:
                    content = await response.read()
                finally:
                    response.release()
                if "Content-Encoding" not in response.headers:
                    return response.status, _reason(response), response.raw_headers, content
                # Compressed: httpx decodes it, as for handle_async_request.
                sent, stream = request(body), httpx.ByteStream(content)
        except Exception as exc:
            mapped = _map_error(exc, request(body))
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=stream,
            extensions=_extensions(response),
            request=sent,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; a large or unsized body streams until the response is closed."""
        await self._starts.enter()
        session = self._session
        if session is None or self._loop is not asyncio.get_running_loop():
            session = self._open()
        data: bytes | AsyncIterator[bytes] | _PiecesPayload
        headers = _text_headers(request.headers)
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):  # an in-memory body
            data = b"".join(stream)
        elif isinstance(stream, PiecesStream):  # shared pieces, Content-Length already set
            data = _PiecesPayload(stream, self._turns)
        else:
            assert isinstance(stream, httpx.AsyncByteStream)
            data = _body(stream)
            # aiohttp frames an iterator itself and refuses a header saying so.
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        # Send exactly the headers httpx built: none of aiohttp's defaults for
        # those it left out (asking for the list costs aiohttp more than the
        # check here, and httpx clients set all three).
        skip = [name for name in _AUTO_HEADERS if name not in request.headers] or None
        try:
            response = await session.request(
                request.method,
                self._url(request),
                headers=headers,
                data=data or None,
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._timeout(request),
                ssl=self._tls() if request.url.scheme == "https" else True,
            )
            extensions = _extensions(response)
            length = response.content_length
            if length is None or length > _EAGER_BODY:
                return httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    stream=_ResponseStream(response, request),
                    extensions=extensions,
                )
            # A small body of known length (every API answer) is read here in
            # one call: cheaper than a stream pulled through httpx's layers.
            try:
                content = await response.read()
            finally:
                response.release()
        except Exception as exc:
            mapped = _map_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            response.status, headers=response.raw_headers, content=content, extensions=extensions
        )

    async def aclose(self) -> None:
        """Close the session and every connection it holds."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            if self._forgotten is not None:
                self._forgotten.detach()
            await session.close()


def _close_quietly(connector: aiohttp.BaseConnector) -> None:
    # The synchronous half of connector.close(): it shuts the sockets and marks
    # the connector closed, so neither it nor its session warns when collected.
    with contextlib.suppress(Exception):
        connector._close()
