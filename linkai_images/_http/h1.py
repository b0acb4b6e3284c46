"""HTTP/1.1 on one connection: a request written, its response read, for the pool.

The pool (``pool.py``) used httpcore's HTTP/1.1 connections, with h11's event
state machine under them. Measured on trio at C=500 against the loopback fake
(``benchmarks/run.py cpu``), raw httpcore connections cost about 270 us of
CPU per request where a bare keep-alive loop on trio's sockets costs about
70 us: h11 builds and validates an event object per step, and httpcore adds
a cancel scope, a trace and an exception-mapping context manager to every
read and write. This module does the exchange the SDK needs, and only that,
in a few passes over bytes:

- the request head is written from the request's headers as they are (httpx
  has built and normalised them), checked for line breaks and NULs, which
  would split or smuggle a header; a small body goes out in the same write;
  a body with ``Content-Length`` is written as it is (never chunked), one
  ``Transfer-Encoding: chunked`` is framed, and the count of bytes written is
  checked against the declared length;
- the response head is parsed and checked as h11 checks it (status line,
  header names as tokens, no control characters in values, obs-fold
  unfolded, one ``Transfer-Encoding`` and only ``chunked``, equal
  ``Content-Length`` values of digits only); 1xx answers other than 101 are
  skipped;
- the body is framed by ``Content-Length``, chunked encoding, or the end of
  the connection, and is cut off (``RemoteProtocolError``) if the connection
  ends early.

Timeouts are httpx's, per operation: ``write`` for each write, ``read`` for
each read, ``connect`` for the connection and TLS handshake. One cancel scope
covers a request's writes and its head, its deadline moved before each
operation. Errors are httpx's, with the same meaning as httpcore's: only
``ConnectError`` and ``ConnectTimeout`` say that nothing was sent.

The socket layer is trio's own on trio (a trio socket, or ``trio.SSLStream``
for TLS), anyio's elsewhere.
"""

from __future__ import annotations

import re
import select
import ssl
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

import httpx

from .stream import WRITE_SLICE, PiecesStream
from .turns import SLICES_PER_PASS, TurnGate

__all__ = [
    "MAX_HEAD",
    "READ_SIZE",
    "Body",
    "Connection",
    "RequestFactory",
    "connect",
    "head_prefix",
    "prepare",
]

#: Bytes asked of the socket per read (64 KiB: below malloc's mmap threshold).
READ_SIZE = 65536
#: A response head (status line and headers) larger than this is refused.
MAX_HEAD = 65536
#: A body up to this size is written with the request head, in one write.
_JOIN_LIMIT = 65536

_HAS_POLL = hasattr(select, "poll")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LINE_BREAK = re.compile(rb"\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")

# Body framing of a response.
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2
# Where a chunked body stands: in chunk data, before a size line, after the last chunk.
_DATA, _SIZE, _TRAILER = 0, 1, 2


#: Builds the ``httpx.Request`` an exchange stands for, when an error or a response needs it.
RequestFactory = Callable[[], httpx.Request]
#: A request body as ``Connection.exchange`` takes it: bytes in memory, shared pieces written
#: one after another, or any async stream of bytes.
Body = bytes | tuple[bytes, ...] | AsyncIterable[bytes]


class _Wire(Protocol):
    """A connected byte stream."""

    async def send_all(self, data: bytes | memoryview) -> None: ...

    async def receive(self) -> bytes:
        """Up to ``READ_SIZE`` bytes; ``b""`` at the end of the stream."""

    async def aclose(self) -> None:
        """Close at once (no TLS close_notify exchange); never waits on the peer."""


class _Scope(Protocol):
    deadline: float

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool: ...


class _TrioSocket:
    """A plain TCP connection as a trio socket: no stream wrapper between us and the calls."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Any) -> None:
        self._socket = socket

    async def send_all(self, data: bytes | memoryview) -> None:
        socket = self._socket
        sent = await socket.send(data)
        if sent < len(data):
            with memoryview(data) as view:
                while sent < len(view):
                    sent += await socket.send(view[sent:])

    async def receive(self) -> bytes:
        return await self._socket.recv(READ_SIZE)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self._socket.close()


class _Stream:
    """A trio or anyio byte stream (TLS, or anything on asyncio)."""

    __slots__ = ("_end", "_receive", "_send", "_stream")

    def __init__(self, stream: Any, send: Callable[..., Any], end: type[Exception] | None) -> None:
        self._stream = stream
        self._send = send
        self._receive = stream.receive_some if end is None else stream.receive
        self._end = end

    async def send_all(self, data: bytes | memoryview) -> None:
        await self._send(data)

    async def receive(self) -> bytes:
        if self._end is None:
            return await self._receive(READ_SIZE)  # type: ignore[no-any-return]
        try:
            return await self._receive(READ_SIZE)  # type: ignore[no-any-return]
        except self._end:
            return b""

    async def aclose(self) -> None:
        import anyio

        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(self._stream)


class _Library:
    """What differs between trio and asyncio: the clock, cancel scopes, the wire's errors."""

    __slots__ = ("errors", "now", "scope")

    def __init__(
        self,
        now: Callable[[], float],
        scope: Callable[..., _Scope],
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self.now = now
        self.scope = scope
        self.errors = errors


def _library(name: str) -> _Library:
    if name == "trio":
        import trio

        return _Library(
            trio.current_time,
            trio.CancelScope,
            (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError),
        )
    import anyio

    return _Library(
        anyio.current_time,
        anyio.CancelScope,
        (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError),
    )


async def connect(
    library: str,
    host: str,
    port: int,
    *,
    request: RequestFactory,
    timeout: float | None,
    keepalive_expiry: float,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Connection:
    """A new connection to ``host:port`` (over TLS with ``tls``), within ``timeout``.

    Raises:
        httpx.ConnectError: the connection or the TLS handshake failed.
        httpx.ConnectTimeout: ``timeout`` passed first.
    """
    lib = _library(library)
    scope = lib.scope(deadline=_deadline(lib, timeout))
    wire: _Wire | None = None
    fd = -1
    try:
        with scope:
            if library == "trio":
                wire, fd = await _connect_trio(host, port, tls, server_hostname)
            else:
                wire, fd = await _connect_anyio(host, port, tls, server_hostname)
    except lib.errors as exc:
        raise httpx.ConnectError(
            f"cannot connect to {host}:{port}: {_describe(exc)}", request=request()
        ) from exc
    if wire is None:  # the scope caught its own deadline
        raise httpx.ConnectTimeout(
            f"no connection to {host}:{port} within {timeout}s", request=request()
        )
    return Connection(wire, fd, lib, keepalive_expiry)


async def _connect_trio(
    host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> tuple[_Wire, int]:
    import trio

    stream = await trio.open_tcp_stream(host, port)  # TCP_NODELAY set by trio
    fd = stream.socket.fileno()
    if tls is None:
        return _TrioSocket(stream.socket), fd
    secure = trio.SSLStream(
        stream, tls, server_hostname=server_hostname or host, https_compatible=True
    )
    try:
        await secure.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(secure)
        raise
    return _Stream(secure, secure.send_all, None), fd


async def _connect_anyio(
    host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> tuple[_Wire, int]:
    import anyio
    from anyio.abc import SocketAttribute

    stream: Any = await anyio.connect_tcp(host, port)
    fd = stream.extra(SocketAttribute.raw_socket).fileno()
    if tls is not None:
        from anyio.streams.tls import TLSStream

        try:
            stream = await TLSStream.wrap(
                stream,
                hostname=server_hostname or host,
                ssl_context=tls,
                standard_compatible=False,
            )
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
    return _Stream(stream, stream.send, anyio.EndOfStream), fd


def _describe(exc: BaseException) -> str:
    """What went wrong, from ``exc`` or what caused it (trio's stream errors wrap an
    ``OSError`` or ``SSLError`` and say nothing themselves)."""
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return f"{type(seen).__name__}: {seen}"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _deadline(lib: _Library, timeout: float | None) -> float:
    return float("inf") if timeout is None else lib.now() + timeout


def head_prefix(method: str, url: httpx.URL, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request line and ``headers`` (written as they are), without the blank line.

    Raises:
        httpx.LocalProtocolError: a header holds a line break or a NUL (it would
            split the head, or smuggle a header).
    """
    prefix = b"".join(
        [
            method.encode("ascii"),
            b" ",
            url.raw_path,
            b" HTTP/1.1\r\n",
            *[name + b": " + value + b"\r\n" for name, value in headers],
        ]
    )
    breaks = len(headers) + 1
    if prefix.count(b"\n") != breaks or prefix.count(b"\r") != breaks or b"\0" in prefix:
        raise httpx.LocalProtocolError(
            "a request header holds a line break or a NUL; nothing was sent"
        )
    return prefix


def prepare(request: httpx.Request) -> tuple[bytes, Body, int | None, bool]:
    """``request``'s head, its body, the declared body length and whether it is chunked.

    Raises:
        httpx.LocalProtocolError: a header would split the head; the length
            is not a number; an in-memory body is not the declared length.
    """
    try:
        head = head_prefix(request.method, request.url, request.headers.raw) + b"\r\n"
    except httpx.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from None
    length: int | None = None
    declared = request.headers.get("content-length")
    coding = request.headers.get("transfer-encoding")
    chunked = declared is None and coding is not None and coding.lower() == "chunked"
    if declared is not None:
        if _DIGITS.fullmatch(declared.encode("ascii", "replace")) is None:
            raise httpx.LocalProtocolError(
                f"Content-Length {declared!r} is not a number of bytes", request=request
            )
        length = int(declared)
    stream = request.stream
    body: Body
    if isinstance(stream, PiecesStream):
        body = stream.pieces
    elif isinstance(stream, httpx.ByteStream) and not chunked:  # bytes (stream.BytesStream)
        body = b"".join(stream)
        if (length or 0) != len(body):
            raise httpx.LocalProtocolError(
                f"the body is {len(body)} bytes but the headers declare {length}",
                request=request,
            )
    else:
        assert isinstance(stream, AsyncIterable)
        body = stream
    return head, body, length, chunked


class Connection:
    """One HTTP/1.1 connection; one request at a time.

    ``exchange`` writes a request and reads its response head; ``next_chunk``
    (or ``small_body``) then reads the body. The connection may carry another
    request once the body is read to its end (``reusable``); anything else (an
    error, a cancellation, a body left unread) leaves it to be closed.
    """

    __slots__ = (
        "_buffer",
        "_chunk_state",
        "_fd",
        "_framing",
        "_keep_alive",
        "_lib",
        "_remaining",
        "_wire",
        "encoded",
        "expires",
        "keepalive_expiry",
        "reusable",
    )

    def __init__(self, wire: _Wire, fd: int, lib: _Library, keepalive_expiry: float) -> None:
        self._wire = wire
        self._fd = fd
        self._lib = lib
        self.keepalive_expiry = keepalive_expiry
        self._buffer = b""
        self._framing = _LENGTH
        self._remaining = 0
        self._chunk_state = _SIZE
        self._keep_alive = True
        #: True between exchanges: the last body was read whole and the peer keeps the connection.
        self.reusable = False
        #: The clock time after which an idle connection is not reused.
        self.expires = 0.0
        #: The last answer has a Content-Encoding (httpx decodes it).
        self.encoded = False

    def fresh(self) -> bool:
        """Whether this idle connection may carry a request now: not expired, not closed by
        the peer (a readable idle socket means an end of stream or data nobody asked for)."""
        if not self.reusable or self._lib.now() >= self.expires:
            return False
        if _HAS_POLL:
            poll = select.poll()
            poll.register(self._fd, select.POLLIN)
            return not poll.poll(0)
        readable, _, _ = select.select([self._fd], [], [], 0)  # Windows: no poll()
        return not readable

    def idle(self) -> None:
        """Mark the connection idle from now (its keep-alive expiry starts)."""
        self.expires = self._lib.now() + self.keepalive_expiry

    async def aclose(self) -> None:
        """Close the connection at once."""
        self.reusable = False
        await self._wire.aclose()

    async def exchange(
        self,
        head: bytes,
        body: Body,
        length: int | None,
        chunked: bool,
        timeouts: Mapping[str, float | None],
        request: RequestFactory,
        *,
        bodiless: bool = False,
        gate: TurnGate | None = None,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        """Send a request; return the response's status, reason, version and headers.

        ``head`` ends with the blank line; ``bodiless``: the answer has no body
        whatever its headers say (a ``HEAD`` request); ``gate``: every
        ``SLICES_PER_PASS`` slices of a big piece wait their turn there (``turns.py``).

        Raises:
            httpx.WriteError, httpx.WriteTimeout: writing failed (it may have
                reached the server).
            httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError: no
                well-formed response head came.
            httpx.LocalProtocolError: the body does not match its length.
        """
        self.reusable = False
        lib = self._lib
        write_timeout = timeouts.get("write")
        scope = lib.scope(deadline=_deadline(lib, write_timeout))
        writing = True
        with scope:
            try:
                await self._send(scope, write_timeout, head, body, length, chunked, request, gate)
            except httpx.WriteError as write_error:
                # The server may have answered and closed before reading it all (a 413,
                # a 401): that answer is worth more than the write error.
                writing = False
                try:
                    answer = await self._receive_head(
                        scope, timeouts.get("read"), request, bodiless
                    )
                except httpx.TransportError:
                    raise write_error from None
                self._keep_alive = False
                return answer
            writing = False
            return await self._receive_head(scope, timeouts.get("read"), request, bodiless)
        if writing:
            raise httpx.WriteTimeout(
                f"the request was not written within {write_timeout}s", request=request()
            )
        raise httpx.ReadTimeout(
            f"no answer within {timeouts.get('read')}s of the request", request=request()
        )

    async def _send(
        self,
        scope: _Scope,
        timeout: float | None,
        head: bytes,
        body: Body,
        length: int | None,
        chunked: bool,
        request: RequestFactory,
        gate: TurnGate | None,
    ) -> None:
        if isinstance(body, bytes):
            if len(body) <= _JOIN_LIMIT:
                await self._write(scope, timeout, head + body, request)
                return
            body = (body,)
        if isinstance(body, tuple):
            # Small pieces go out with what comes before them; big ones slice by slice.
            pending = head
            for piece in body:
                if len(piece) <= _JOIN_LIMIT:
                    pending += piece
                    continue
                await self._write(scope, timeout, pending, request)
                pending = b""
                with memoryview(piece) as view:
                    for start in range(0, len(view), WRITE_SLICE):
                        # A few uploads go on per turn, each for a few slices: the
                        # pass (a wait, a wake-up) costs about what a slice's send does.
                        if gate is not None and not start % (WRITE_SLICE * SLICES_PER_PASS):
                            await gate.enter()
                        part = view[start : start + WRITE_SLICE]
                        await self._write(scope, timeout, part, request)
            if pending:
                await self._write(scope, timeout, pending, request)
            return
        await self._write(scope, timeout, head, request)
        sent = 0
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if length is not None and sent > length:
                raise httpx.LocalProtocolError(
                    f"the body is longer than its Content-Length of {length}", request=request()
                )
            if chunked:
                chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            elif length is None:
                raise httpx.LocalProtocolError(
                    "the request has a body but neither Content-Length nor chunked encoding",
                    request=request(),
                )
            await self._write(scope, timeout, chunk, request)
        if chunked:
            await self._write(scope, timeout, b"0\r\n\r\n", request)
        elif length is not None and sent != length:
            raise httpx.LocalProtocolError(
                f"the body ended after {sent} of its {length} bytes", request=request()
            )

    async def _write(
        self,
        scope: _Scope,
        timeout: float | None,
        data: bytes | memoryview,
        request: RequestFactory,
    ) -> None:
        if timeout is not None:
            scope.deadline = self._lib.now() + timeout
        try:
            await self._wire.send_all(data)
        except self._lib.errors as exc:
            raise httpx.WriteError(
                f"writing the request failed: {_describe(exc)}", request=request()
            ) from exc

    async def _read(self, scope: _Scope, timeout: float | None, request: RequestFactory) -> bytes:
        scope.deadline = _deadline(self._lib, timeout)
        try:
            return await self._wire.receive()
        except self._lib.errors as exc:
            raise httpx.ReadError(
                f"reading the answer failed: {_describe(exc)}", request=request()
            ) from exc

    async def _receive_head(
        self, scope: _Scope, timeout: float | None, request: RequestFactory, bodiless: bool
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                text, buffer = buffer[:end], buffer[end + 4 :]
            else:
                blank = _BLANK_LINE.search(buffer)
                if blank is not None:
                    text, buffer = buffer[: blank.start()], buffer[blank.end() :]
                else:
                    if len(buffer) > MAX_HEAD:
                        raise httpx.RemoteProtocolError(
                            f"the answer's head is longer than {MAX_HEAD} bytes",
                            request=request(),
                        )
                    data = await self._read(scope, timeout, request)
                    if not data:
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response."
                            if not buffer
                            else "the server closed the connection within the answer's head",
                            request=request(),
                        )
                    buffer += data
                    continue
            answer = self._parse_head(text, request, bodiless)
            status = answer[0]
            if 100 <= status < 200 and status != 101:
                continue  # informational (100 Continue, 103 Early Hints): the answer follows
            self._buffer = buffer
            return answer

    def _parse_head(
        self, text: bytes, request: RequestFactory, bodiless: bool
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        lines = _LINE_BREAK.split(text)
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise httpx.RemoteProtocolError(
                f"the answer does not start with an HTTP/1 status line: {lines[0][:80]!r}",
                request=request(),
            )
        minor, code, reason = status_line.groups()
        status = int(code)
        if status < 100:
            raise httpx.RemoteProtocolError(
                f"status {status} is not an HTTP status", request=request()
            )
        headers: list[tuple[bytes, bytes]] = []
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        close = minor == b"0"
        encoded = False
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):  # obs-fold: a continuation of the header before
                if not headers:
                    raise httpx.RemoteProtocolError(
                        "the answer's first header line is a continuation", request=request()
                    )
                name, value = headers.pop()
                line = name + b": " + value + b" " + line.strip(b" \t")
            field = _FIELD.fullmatch(line)
            if field is None:
                raise httpx.RemoteProtocolError(
                    f"the answer has a malformed header line: {line[:80]!r}", request=request()
                )
            name, value = field.groups()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                lengths.update(part.strip(b" \t") for part in value.split(b","))
            elif lowered == b"transfer-encoding":
                codings.append(value.lower())
            elif lowered == b"connection":
                tokens = {token.strip(b" \t").lower() for token in value.split(b",")}
                if b"close" in tokens:
                    close = True
            elif lowered == b"content-encoding":
                encoded = True
        if status == 101 or bodiless or status in (204, 304):
            framing, remaining = _LENGTH, 0
            close = close or status == 101
        elif codings:
            if codings != [b"chunked"]:
                raise httpx.RemoteProtocolError(
                    f"Transfer-Encoding {b', '.join(codings).decode('latin-1')!r} is not "
                    "supported; only chunked",
                    request=request(),
                )
            framing, remaining = _CHUNKED, 0
            self._chunk_state = _SIZE
        elif lengths:
            only = lengths.pop() if len(lengths) == 1 else b""
            if _DIGITS.fullmatch(only) is None:
                raise httpx.RemoteProtocolError(
                    "the answer's Content-Length is not one number of bytes", request=request()
                )
            framing, remaining = _LENGTH, int(only)
        else:
            framing, remaining, close = _UNTIL_CLOSE, 0, True
        self._framing = framing
        self._remaining = remaining
        self._keep_alive = not close
        self.encoded = encoded
        return status, reason or b"", b"HTTP/1.%s" % minor, headers

    async def small_body(
        self, limit: int, timeout: float | None, request: RequestFactory
    ) -> bytes | None:
        """The whole body when its Content-Length is at most ``limit`` and it is not encoded
        (read now if not yet here); ``None`` for any other body, left unread."""
        if self._framing != _LENGTH or self._remaining > limit or self.encoded:
            return None
        remaining, buffer = self._remaining, self._buffer
        if len(buffer) >= remaining:  # the usual case: it came with the head
            content, self._buffer = buffer[:remaining], buffer[remaining:]
        else:
            chunks = [buffer]
            size = len(buffer)
            while size < remaining:
                chunk = await self._more(timeout, request, remaining - size)
                chunks.append(chunk)
                size += len(chunk)
            joined = b"".join(chunks)
            content, self._buffer = joined[:remaining], joined[remaining:]
        self._remaining = 0
        self._end()
        return content

    async def next_chunk(self, timeout: float | None, request: RequestFactory) -> bytes:
        """The next piece of the response body; ``b""`` once it is read whole.

        ``timeout`` bounds each read from the socket.

        Raises:
            httpx.ReadError, httpx.ReadTimeout: reading failed.
            httpx.RemoteProtocolError: the body is cut off or badly framed.
        """
        framing = self._framing
        if framing == _LENGTH:
            remaining = self._remaining
            if remaining == 0:
                return self._end()
            buffer = self._buffer or await self._more(timeout, request, remaining)
            chunk, self._buffer = buffer[:remaining], buffer[remaining:]
            self._remaining = remaining - len(chunk)
            return chunk
        if framing == _CHUNKED:
            return await self._next_chunked(timeout, request)
        if self._buffer:
            chunk, self._buffer = self._buffer, b""
            return chunk
        chunk = await self._receive(timeout, request)
        if not chunk:
            self._framing, self._remaining = _LENGTH, 0
            self._keep_alive = False
        return chunk

    def _end(self) -> bytes:
        # Bytes past the body are nothing a client asked for: never reuse that connection.
        self.reusable = self._keep_alive and not self._buffer
        return b""

    async def _more(
        self, timeout: float | None, request: RequestFactory, remaining: int | None = None
    ) -> bytes:
        data = await self._receive(timeout, request)
        if not data:
            self._keep_alive = False
            short = f"{remaining} bytes " if remaining is not None else ""
            raise httpx.RemoteProtocolError(
                f"the server closed the connection {short}before the end of the body",
                request=request(),
            )
        return data

    async def _receive(self, timeout: float | None, request: RequestFactory) -> bytes:
        scope = self._lib.scope()
        with scope:
            return await self._read(scope, timeout, request)
        raise httpx.ReadTimeout(f"no more of the answer within {timeout}s", request=request())

    async def _next_chunked(self, timeout: float | None, request: RequestFactory) -> bytes:
        while True:
            state, buffer = self._chunk_state, self._buffer
            if state == _DATA:
                remaining = self._remaining
                if not buffer:
                    buffer = await self._more(timeout, request, remaining)
                chunk, self._buffer = buffer[:remaining], buffer[remaining:]
                self._remaining = remaining = remaining - len(chunk)
                if remaining == 0:
                    self._chunk_state = _SIZE
                    self._buffer = await self._expect_crlf(timeout, request)
                return chunk
            if state == _SIZE:
                size_line = _CHUNK_SIZE.match(buffer)
                if size_line is None:
                    if b"\n" in buffer or len(buffer) > 1024:
                        raise httpx.RemoteProtocolError(
                            f"a chunk size line of the answer is malformed: {buffer[:40]!r}",
                            request=request(),
                        )
                    self._buffer = buffer + await self._more(timeout, request)
                    continue
                self._buffer = buffer[size_line.end() :]
                self._remaining = int(size_line.group(1), 16)
                self._chunk_state = _DATA if self._remaining else _TRAILER
                continue
            # The trailer: header lines up to a blank line, all ignored.
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise httpx.RemoteProtocolError(
                        "the answer's chunked trailer is too long", request=request()
                    )
                self._buffer = buffer + await self._more(timeout, request)
                continue
            line, self._buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1 :]
            if not line:
                self._framing, self._remaining = _LENGTH, 0
                return self._end()

    async def _expect_crlf(self, timeout: float | None, request: RequestFactory) -> bytes:
        buffer = self._buffer
        while len(buffer) < 2 and buffer != b"\n":
            buffer += await self._more(timeout, request)
        if buffer.startswith(b"\r\n"):
            return buffer[2:]
        if buffer.startswith(b"\n"):
            return buffer[1:]
        raise httpx.RemoteProtocolError(
            "a chunk of the answer is longer than its size says", request=request()
        )
