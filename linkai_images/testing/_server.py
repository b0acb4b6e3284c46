"""The fake served on loopback: two real HTTP/1.1 origins (API and CDN) in a thread.

The server runs its own asyncio loop in a daemon thread, so it serves tests
on asyncio and on trio alike, and blocking code too. It has to be cheap per
request (benchmarks fan out hundreds of requests at zero latency and must
measure the client, not the fake), hence ``asyncio.Protocol`` and a small
HTTP/1.1 parser instead of a framework: keep-alive, pipelining,
``Content-Length`` and chunked request bodies, ``Expect: 100-continue`` and
``Connection: close``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from http import HTTPStatus
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._reply import Engine, Reply, error_body

__all__ = ["FakeServer"]

#: The engine a server serves (``FakeLinkAI``), so that ``server.fake`` keeps its type.
EngineT = TypeVar("EngineT", bound=Engine)

_MAX_HEAD = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024
_BACKLOG = 4096
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}


def _encode(reply: Reply, close: bool) -> bytes:
    status_line = _STATUS_LINES.get(reply.status) or (
        f"HTTP/1.1 {reply.status} {_reason(reply.status)}\r\n".encode()
    )
    lines = [f"{name}: {value}\r\n" for name, value in reply.headers]
    lines.append(f"content-length: {len(reply.body)}\r\n")
    if close:
        lines.append("connection: close\r\n")
    lines.append("\r\n")
    head = status_line + "".join(lines).encode("latin-1")
    return head if reply.head else head + reply.body


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Head:
    __slots__ = ("body_start", "headers", "keep_alive", "method", "target")

    def __init__(
        self, method: str, target: str, headers: dict[str, str], keep_alive: bool, body_start: int
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive
        self.body_start = body_start


def _parse_head(buffer: bytearray, end: int) -> _Head:
    text = buffer[:end].decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, "malformed header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return _Head(method, target, headers, keep_alive, end + 4)


def _chunked_body(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The decoded body and the offset after it, or ``None`` when incomplete."""
    chunks: list[bytes] = []
    pos = start
    total = 0
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, "malformed chunk size") from None
        pos = line_end + 2
        if size == 0:
            break
        total += size
        if total > _MAX_BODY:
            raise _BadRequest(413, "request body too large")
        if len(buffer) < pos + size + 2:
            return None
        chunks.append(bytes(buffer[pos : pos + size]))
        if buffer[pos + size : pos + size + 2] != b"\r\n":
            raise _BadRequest(400, "malformed chunk")
        pos += size + 2
    while True:  # trailer fields, up to an empty line
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        if line_end == pos:
            return b"".join(chunks), pos + 2
        pos = line_end + 2


class _Connection(asyncio.Protocol):
    """One TCP connection to either origin; requests on it are answered in order."""

    def __init__(self, server: FakeServer[Any], api: bool) -> None:
        self._server = server
        self._api = api
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._continued = False
        self._transport: asyncio.Transport | None = None
        self._waiting: asyncio.TimerHandle | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._opened(self, self._api)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._lost(self)
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
            if self._api:
                self._server.fake._finish()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiting is None:
            self._serve()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def _serve(self) -> None:
        while self._waiting is None and not self._closed:
            try:
                request = self._next_request()
            except _BadRequest as exc:
                body = error_body(exc.status, exc.message)
                self._write(
                    Reply(exc.status, (("content-type", "application/json"),), body), close=True
                )
                return
            if request is None:
                return
            head, body = request
            self._dispatch(head, body)

    def _next_request(self) -> tuple[_Head, bytes] | None:
        buffer = self._buffer
        head = self._head
        if head is None:
            while buffer.startswith(b"\r\n"):  # stray line ends between requests
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise _BadRequest(431, "request head too large")
                return None
            head = self._head = _parse_head(buffer, end)
            self._continued = False
        headers = head.headers
        if "chunked" in headers.get("transfer-encoding", "").lower():
            found = _chunked_body(buffer, head.body_start)
            if found is None:
                self._maybe_continue(headers)
                return None
            body, end = found
        else:
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit():
                raise _BadRequest(400, "malformed Content-Length")
            length = int(length_text)
            if length > _MAX_BODY:
                raise _BadRequest(413, "request body too large")
            end = head.body_start + length
            if len(buffer) < end:
                self._maybe_continue(headers)
                return None
            body = bytes(buffer[head.body_start : end])
        del buffer[:end]
        self._head = None
        return head, body

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._continued and headers.get("expect", "").lower() == "100-continue":
            self._continued = True
            assert self._transport is not None
            self._transport.write(_CONTINUE)

    def _dispatch(self, head: _Head, body: bytes) -> None:
        fake = self._server.fake
        try:
            if self._api:
                reply = fake._handle(
                    head.method, head.target, head.headers, body, cdn_url=self._server.cdn_url
                )
            else:
                reply = fake._handle_cdn(head.method, head.target, head.headers)
        except Exception as exc:  # e.g. a latency function that raised: show it to the test
            message = f"the fake failed: {exc!r}"
            reply = Reply(500, (("content-type", "application/json"),), error_body(500, message))
            self._write(reply, close=True)
            return
        if reply.delay > 0:
            loop = asyncio.get_running_loop()
            self._waiting = loop.call_later(reply.delay, self._complete, reply, head.keep_alive)
        else:
            self._finish(reply, head.keep_alive)

    def _complete(self, reply: Reply, keep_alive: bool) -> None:
        self._waiting = None
        self._finish(reply, keep_alive)
        # Requests pipelined behind the delayed one were left in the buffer.
        self._serve()

    def _finish(self, reply: Reply, keep_alive: bool) -> None:
        if self._api:
            self._server.fake._finish()
        if not reply.respond:
            self._close()
        else:
            self._write(reply, close=not keep_alive)

    def _write(self, reply: Reply, *, close: bool) -> None:
        if self._closed or self._transport is None:
            return
        self._transport.write(_encode(reply, close))
        if close:
            self._close()


class FakeServer(Generic[EngineT]):
    """A :class:`FakeLinkAI` served over real TCP on two loopback ports.

    Made by :meth:`FakeLinkAI.serve`; ``with fake.serve() as server:`` starts
    it and stops it. Stopping closes every connection at once, hanging
    requests included.

    Attributes:
        fake: the fake behind the server.
        host: the listening address.
        port: the API port (known once started).
        cdn_port: the CDN port (known once started).
    """

    def __init__(
        self, fake: EngineT, *, host: str = "127.0.0.1", port: int = 0, cdn_port: int = 0
    ) -> None:
        self.fake = fake
        self.host = host
        self.port = port
        self.cdn_port = cdn_port
        self._connections: set[_Connection] = set()
        self._api_opened = 0
        self._cdn_opened = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._cdn_url = ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<FakeServer {state} base_url={self.base_url!r} cdn_url={self.cdn_url!r}>"

    def _origin(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"{self._origin(self.port)}/v1"

    @property
    def cdn_url(self) -> str:
        """The CDN origin the image URLs point at, e.g. ``http://127.0.0.1:54322``."""
        return self._cdn_url or self._origin(self.cdn_port)

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted by the API origin since the start."""
        return self._api_opened

    @property
    def cdn_connections_opened(self) -> int:
        """TCP connections accepted by the CDN origin since the start."""
        return self._cdn_opened

    def start(self) -> FakeServer[EngineT]:
        """Start listening, in a daemon thread with its own event loop.

        Returns:
            This server.

        Raises:
            RuntimeError: already started.
            OSError: a port could not be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the fake server was already started")
        self._thread = threading.Thread(target=self._run, name="linkai-fake-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the fake server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Close every connection and stop; waits for the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> FakeServer[EngineT]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the loop thread -----------------------------------------------------

    def _opened(self, connection: _Connection, api: bool) -> None:
        self._connections.add(connection)
        if api:
            self._api_opened += 1
        else:
            self._cdn_opened += 1

    def _lost(self, connection: _Connection) -> None:
        self._connections.discard(connection)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        listeners: list[asyncio.Server] = []
        try:
            for port, is_api in ((self.port, True), (self.cdn_port, False)):
                listeners.append(
                    loop.run_until_complete(
                        loop.create_server(
                            functools.partial(_Connection, self, is_api),
                            self.host,
                            port,
                            backlog=_BACKLOG,
                        )
                    )
                )
        except BaseException as exc:  # reported to start() in the calling thread
            for listener in listeners:
                listener.close()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        api, cdn = listeners
        self.port = api.sockets[0].getsockname()[1]
        self.cdn_port = cdn.sockets[0].getsockname()[1]
        self._cdn_url = self._origin(self.cdn_port)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            api.close()
            cdn.close()
            for connection in list(self._connections):
                connection.abort()
            # Let the aborted transports run connection_lost and close their sockets.
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
