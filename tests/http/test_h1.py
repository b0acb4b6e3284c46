"""The pool's own HTTP/1.1 (``_http/h1.py``) against raw answers over loopback.

A scripted origin answers each request on a connection with the next bytes of
its script, so framing, keep-alive and malformed answers are exercised through
the real transport on asyncio (anyio's sockets) and trio (trio's).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import httpx
import pytest
import trustme
from helpers import wait_until

from linkai_images._http.h1 import MAX_HEAD
from linkai_images._http.pool import PooledTransport
from linkai_images._http.transport import build_transport

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: At the end of a reply: the origin closes the connection after it (without saying so).
CLOSE = b"<close>"
#: At the end of a reply: the origin sends nothing more, until the client goes away.
HANG = b"<hang>"


class ScriptedOrigin:
    """A loopback HTTP/1.1 server: each request it reads gets the next reply of ``script``.

    A reply is raw bytes sent as they are, then the origin reads the next
    request; a reply ending in ``CLOSE`` closes the connection after its bytes,
    one ending in ``HANG`` waits for the client to go away. ``early`` answers
    after reading only the request head, then closes (an upload refused mid-way).
    """

    def __init__(
        self, *script: bytes, early: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        self.script = list(script)
        self.early = early
        self.tls = tls
        self.handshakes_failed = 0
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        scheme, host = ("https", "localhost") if self.tls else ("http", "127.0.0.1")
        return f"{scheme}://{host}:{self._listener.getsockname()[1]}/v1/images"

    def close(self) -> None:
        self._stopped.set()
        self._accepting.join()
        for thread in self._threads:
            thread.join()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if self.tls is not None:
                connection.settimeout(5)
                try:
                    connection = self.tls.wrap_socket(connection, server_side=True)
                except (OSError, ssl.SSLError):
                    self.handshakes_failed += 1
                    connection.close()
                    continue
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(0.1)
        buffer = b""
        with connection:
            while not self._stopped.is_set():
                try:
                    request, buffer = self._read_request(connection, buffer)
                except OSError:
                    break
                if request is None:
                    break
                self.requests.append(request)
                reply = self.script.pop(0) if self.script else OK
                connection.sendall(reply.removesuffix(CLOSE).removesuffix(HANG))
                if reply.endswith(HANG):
                    self._wait_for_close(connection)
                if reply.endswith((CLOSE, HANG)) or self.early:
                    break
            self.closed += 1

    def _wait_for_close(self, connection: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                if not connection.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _read_request(self, connection: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            chunk = self._recv(connection)
            if not chunk:
                return None, b""
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        if self.early:
            return head, b""
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            while not rest.endswith(b"0\r\n\r\n"):
                rest += self._recv(connection)
            return head + b"\r\n\r\n" + rest, b""
        length = 0
        for line in lowered.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self._recv(connection)
            if not chunk:
                return None, b""
            rest += chunk
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _recv(self, connection: socket.socket) -> bytes:
        while not self._stopped.is_set():
            try:
                return connection.recv(65536)
            except TimeoutError:
                continue
        return b""


@pytest.fixture
def origin_factory() -> Iterator[list[ScriptedOrigin]]:
    """Origins made by a test, closed after it."""
    made: list[ScriptedOrigin] = []
    yield made
    for origin in made:
        origin.close()


Scripted = Callable[..., ScriptedOrigin]


@pytest.fixture
def scripted(origin_factory: list[ScriptedOrigin]) -> Scripted:
    """``scripted(*replies, early=False, tls=None)``: a new scripted origin."""

    def make(
        *replies: bytes, early: bool = False, tls: ssl.SSLContext | None = None
    ) -> ScriptedOrigin:
        origin = ScriptedOrigin(*replies, early=early, tls=tls)
        origin_factory.append(origin)
        return origin

    return make


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the SDK's pool (trio's sockets on trio, anyio's on asyncio)."""
    async with httpx.AsyncClient(transport=build_transport(4, "httpx"), timeout=5) as client:
        yield client


async def test_a_chunked_answer_is_read_whole_and_the_connection_reused(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """Chunks with extensions and a trailer join to the body; the connection serves again."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    origin = scripted(chunked, OK)
    first = await http.get(origin.url)
    second = await http.get(origin.url)
    assert (b"hello world", b"ok", 1) == (first.content, second.content, origin.connections)


async def test_an_answer_without_a_length_ends_with_the_connection(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """No Content-Length, no chunking: the body is all until the close; then a new connection."""
    origin = scripted(b"HTTP/1.1 200 OK\r\n\r\nall of it" + CLOSE, OK)
    first = await _until_close(http, origin.url)
    second = await http.get(origin.url)
    assert (b"all of it", b"ok", 2) == (first, second.content, origin.connections)


async def _until_close(http: httpx.AsyncClient, url: str) -> bytes:
    """The body of a GET of ``url``, read as a stream."""
    async with http.stream("GET", url) as response:
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_connection_close_is_honoured(scripted: Scripted, http: httpx.AsyncClient) -> None:
    """An answer saying ``Connection: close`` is not followed by a reuse of its connection."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
    origin = scripted(closing, OK)  # the origin itself would keep the connection
    first = await http.get(origin.url)
    second = await http.get(origin.url)
    assert (b"hi", b"ok", 2) == (first.content, second.content, origin.connections)


async def test_informational_answers_are_skipped(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """100 Continue and 103 Early Hints before the answer are passed over."""
    origin = scripted(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
    )
    response = await http.get(origin.url)
    assert (200, b"ok") == (response.status_code, response.content)


async def test_a_folded_header_is_unfolded(scripted: Scripted, http: httpx.AsyncClient) -> None:
    """An obsolete folded header line continues the header before it."""
    origin = scripted(
        b"HTTP/1.1 200 OK\r\nX-Note: one\r\n  two\r\nContent-Length: 2\r\n\r\nok",
    )
    response = await http.get(origin.url)
    assert "one two" == response.headers["x-note"]


async def test_bare_line_feeds_are_accepted(scripted: Scripted, http: httpx.AsyncClient) -> None:
    """A head whose lines end in LF alone is read as h11 reads it."""
    origin = scripted(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    response = await http.get(origin.url)
    assert (200, b"ok") == (response.status_code, response.content)


async def test_no_body_after_204_or_a_head_request(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """204 and answers to HEAD carry no body, whatever Content-Length says; keep-alive holds."""
    origin = scripted(
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        OK,
    )
    empty = await http.get(origin.url)
    head = await http.head(origin.url)
    after = await http.get(origin.url)
    assert (204, b"", 200, b"", b"ok", 1) == (
        empty.status_code,
        empty.content,
        head.status_code,
        head.content,
        after.content,
        origin.connections,
    )


async def test_bytes_past_the_body_retire_the_connection(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """An answer longer than its Content-Length is cut at it; that connection is not reused."""
    origin = scripted(OK + b"junk", OK)
    first = await http.get(origin.url)
    second = await http.get(origin.url)
    assert (b"ok", b"ok", 2) == (first.content, second.content, origin.connections)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Bad : a\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n folded first\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * MAX_HEAD,
        b"HTTP/1.1 200",
        b"",
    ],
    ids=[
        "two-lengths",
        "signed-length",
        "huge-length",
        "gzip-coding",
        "two-codings",
        "nul-in-value",
        "space-before-colon",
        "first-line-folded",
        "http2",
        "two-digit-status",
        "four-digit-status",
        "status-below-100",
        "bad-chunk-size",
        "chunk-too-long",
        "chunked-cut-off",
        "length-cut-off",
        "head-too-long",
        "head-cut-off",
        "nothing",
    ],
)
async def test_malformed_answers_are_remote_protocol_errors(
    scripted: Scripted, http: httpx.AsyncClient, answer: bytes
) -> None:
    """Each framing or syntax error of the answer is httpx.RemoteProtocolError, nothing else."""
    origin = scripted(answer + CLOSE)
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(origin.url)


async def test_a_line_break_in_a_header_is_refused_before_sending(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """A header value that would split the head is never written (no header smuggling)."""
    origin = scripted(OK)
    with pytest.raises(httpx.LocalProtocolError, match="line break"):
        await http.get(origin.url, headers={"X-Evil": "a\r\nX-Injected: 1"})
    assert [] == origin.requests


async def test_a_body_shorter_than_its_length_is_refused(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """A streamed body that ends before its declared Content-Length fails locally."""

    async def body() -> AsyncIterator[bytes]:
        yield b"12345"

    origin = scripted(OK)
    with pytest.raises(httpx.LocalProtocolError, match="after 5 of its 10 bytes"):
        await http.post(origin.url, content=body(), headers={"Content-Length": "10"})


async def test_a_chunked_upload_is_framed(scripted: Scripted, http: httpx.AsyncClient) -> None:
    """A body of unknown length goes out chunk by chunk, ending with the last chunk."""

    async def body() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b""
        yield b"world"

    origin = scripted(OK)
    await http.post(origin.url, content=body())
    assert origin.requests[0].endswith(b"\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")


async def test_an_early_answer_to_an_upload_is_returned(
    scripted: Scripted, anyio_backend_name: str
) -> None:
    """A server answering 413 and closing mid-upload: on trio the 413 comes back.

    On asyncio the stream is torn down by the failed write before the answer
    can be read, so it may be the write error ("maybe sent") instead.
    """
    refusal = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!"
    origin = scripted(refusal, early=True)
    async with httpx.AsyncClient(transport=build_transport(4, "httpx"), timeout=5) as http:
        try:
            response = await http.post(origin.url, content=b"x" * 50_000_000)
        except httpx.WriteError:
            outcome: object = httpx.WriteError
        else:
            outcome = (response.status_code, response.content)
    allowed = [(413, b"too big!")]
    if anyio_backend_name == "asyncio":
        allowed.append(httpx.WriteError)  # type: ignore[arg-type]
    assert outcome in allowed


async def test_an_idle_connection_the_server_closed_is_not_used(
    scripted: Scripted, http: httpx.AsyncClient
) -> None:
    """The server dropped the kept-alive connection: the next request opens a new one."""
    origin = scripted(OK + CLOSE, OK)
    first = await http.get(origin.url)
    await wait_until(lambda: origin.closed == 1)
    second = await http.get(origin.url)
    assert (b"ok", b"ok", 2) == (first.content, second.content, origin.connections)


async def test_a_stalled_body_times_out_as_a_read_timeout(scripted: Scripted) -> None:
    """A head followed by silence: httpx.ReadTimeout from the body read."""
    origin = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" + HANG)
    async with httpx.AsyncClient(
        transport=build_transport(4, "httpx"), timeout=httpx.Timeout(5.0, read=0.2)
    ) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(origin.url)


async def test_a_cancelled_request_retires_its_connection(scripted: Scripted) -> None:
    """A request cancelled while waiting for its answer leaves no half-used connection."""
    origin = scripted(HANG, OK)
    transport = build_transport(4, "httpx")
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        with anyio.move_on_after(0.2):
            await http.get(origin.url)
        response = await http.get(origin.url)
        inner = transport.selected  # type: ignore[attr-defined]
        assert isinstance(inner, PooledTransport)
        assert (b"ok", 2, 1) == (response.content, origin.connections, inner.idle_connections)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_server(authority: trustme.CA) -> ssl.SSLContext:
    """The server side of TLS: a certificate for localhost signed by ``authority``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    return context


def _pool(trusted: trustme.CA | None, library: str) -> PooledTransport:
    """The pool on the running library, trusting ``trusted`` (else the default CAs)."""
    context = ssl.create_default_context()
    if trusted is not None:
        trusted.configure_trust(context)
    return PooledTransport(max_connections=4, ssl_context=context, library=library)


async def test_https_answers_over_a_reused_connection(
    scripted: Scripted, tls_server: ssl.SSLContext, authority: trustme.CA, anyio_backend_name: str
) -> None:
    """Over TLS (trio's SSLStream, anyio's TLSStream), answers read whole, one connection kept."""
    origin = scripted(OK, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain", tls=tls_server)
    async with httpx.AsyncClient(transport=_pool(authority, anyio_backend_name)) as http:
        first = await http.post(origin.url, content=b'{"prompt": "a fox"}')
        second = await http.get(origin.url)
    assert (b"ok", b"again", 1) == (first.content, second.content, origin.connections)
    assert origin.requests[0].endswith(b'\r\n\r\n{"prompt": "a fox"}')


async def test_an_untrusted_certificate_is_a_connect_error(
    scripted: Scripted, tls_server: ssl.SSLContext, anyio_backend_name: str
) -> None:
    """A certificate no trusted CA signed fails the handshake: ConnectError, nothing sent."""
    origin = scripted(OK, tls=tls_server)
    async with httpx.AsyncClient(transport=_pool(None, anyio_backend_name)) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(origin.url)
    assert [] == origin.requests
