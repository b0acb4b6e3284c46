"""The transports under the client: choice per backend, error mapping, pooling, closing."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import anyio
import httpx
import pytest
from helpers import ThreadedOrigin, wait_until

from linkai_images import APIConnectionError, APITimeoutError, AsyncImageClient, LinkAIError
from linkai_images._http.aio import AiohttpTransport, _map_error
from linkai_images._http.endpoint import _NEVER_SENT
from linkai_images._http.pool import PooledTransport
from linkai_images._http.transport import (
    DOWNLOAD_CONNECTIONS,
    AutoTransport,
    HTTPBackend,
    build_transport,
    current_async_library,
)
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = pytest.mark.anyio

MODEL = "gpt-image-2"


@pytest.fixture(params=["auto", "httpx"])
def backend(request: pytest.FixtureRequest) -> HTTPBackend:
    """Each transport choice a user can make that runs on every async library."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def client(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> AsyncIterator[AsyncImageClient]:
    """A client on the fake, over the transport ``backend`` picks, never retrying."""
    async with AsyncImageClient(
        fake.api_key,
        base_url=server.base_url,
        default_model=MODEL,
        max_retries=0,
        max_concurrency=8,
        transport=build_transport(8, backend),
    ) as running:
        yield running


def request(url: str, **timeout: float | None) -> httpx.Request:
    """A generation-like POST carrying per-request timeouts, as the client builds it."""
    limits = httpx.Timeout(10.0, **timeout)
    return httpx.Request(
        "POST",
        url,
        content=b'{"model": "gpt-image-2", "prompt": "a fox"}',
        headers={"Authorization": "Bearer sk-linkai-fake-key", "Content-Type": "application/json"},
        extensions={"timeout": limits.as_dict()},
    )


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_aiohttp_is_not_imported_with_the_package() -> None:
    """Importing linkai_images leaves aiohttp unloaded: the extra costs nothing until used."""
    code = "import sys, linkai_images; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "False" == out.stdout.strip()


def test_unknown_backend_is_refused_with_the_choices() -> None:
    """A misspelt backend names itself and the allowed ones."""
    with pytest.raises(ValueError, match="'curl' is not known; choose one of auto, aiohttp, httpx"):
        build_transport(8, "curl")  # type: ignore[arg-type]


def test_pool_holds_the_bound_plus_the_downloads() -> None:
    """The pool is sized so a request past the client's bound never waits for a connection."""
    transport = build_transport(500)
    assert isinstance(transport, AutoTransport)
    assert 500 + DOWNLOAD_CONNECTIONS == transport.max_connections


async def test_the_transport_is_chosen_by_the_running_library(
    client: AsyncImageClient, backend: HTTPBackend, anyio_backend_name: str
) -> None:
    """auto: aiohttp on asyncio, the SDK's pool on trio; httpx: the pool everywhere."""
    transport = client._transport
    assert isinstance(transport, AutoTransport)
    assert transport.selected is None
    await client.generate("a fox")
    aiohttp_expected = backend == "auto" and anyio_backend_name == "asyncio"
    expected = AiohttpTransport if aiohttp_expected else PooledTransport
    assert isinstance(transport.selected, expected)


async def test_without_aiohttp_auto_falls_back_to_the_pool(
    fake: FakeLinkAI, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the aiohttp extra missing, auto sends through the SDK's pool on any backend."""
    monkeypatch.setattr("linkai_images._http.transport._aiohttp_installed", lambda: False)
    transport = build_transport(4)
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.send(request(server.base_url + "/images/generations"))
    assert (200, PooledTransport) == (response.status_code, type(transport.selected))  # type: ignore[attr-defined]


async def test_aiohttp_backend_on_trio_is_refused(
    server: FakeServer, anyio_backend_name: str
) -> None:
    """Asking for aiohttp on trio fails with a message naming the way out; asyncio just works."""
    transport = build_transport(4, "aiohttp")
    try:
        if anyio_backend_name == "trio":
            with pytest.raises(LinkAIError, match="needs asyncio, but this client runs on trio"):
                await transport.handle_async_request(request(server.base_url))
        else:
            response = await transport.handle_async_request(request(server.base_url))
            await response.aclose()
            assert AiohttpTransport is type(transport.selected)  # type: ignore[attr-defined]
    finally:
        await transport.aclose()


async def test_connection_refused_means_never_sent(backend: HTTPBackend) -> None:
    """Nothing listening: the error says the request never left (safe to retry)."""
    async with AsyncImageClient(
        "sk-linkai-fake-key",
        base_url=f"http://127.0.0.1:{closed_port()}/v1",
        default_model=MODEL,
        max_retries=0,
        transport=build_transport(8, backend),
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.generate("a fox")
    assert (False, httpx.ConnectError) == (caught.value.request_sent, type(caught.value.__cause__))


async def test_drop_after_the_request_means_sent_and_not_resent(
    fake: FakeLinkAI, client: AsyncImageClient
) -> None:
    """A connection closed after the server read the request: "sent", and never sent again."""
    await client.generate("warm up a keep-alive connection")
    fake.fail(Fault.drop(), prompt="a fox")
    with pytest.raises(APIConnectionError) as caught:
        await client.generate("a fox")
    cause = caught.value.__cause__
    assert (True, httpx.RemoteProtocolError, 1) == (
        caught.value.request_sent,
        type(cause),
        fake.attempts("a fox"),
    )
    assert cause is not None
    assert not isinstance(cause, _NEVER_SENT)


async def test_read_timeout_is_mapped_and_counts_as_sent(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """The per-request read timeout fires as httpx.ReadTimeout, then APITimeoutError "sent"."""
    fake.latency = 5.0
    async with AsyncImageClient(
        fake.api_key,
        base_url=server.base_url,
        default_model=MODEL,
        max_retries=0,
        timeout=httpx.Timeout(10.0, read=0.2),
        transport=build_transport(4, backend),
    ) as client:
        with anyio.fail_after(4):
            with pytest.raises(APITimeoutError) as caught:
                await client.generate("a slow fox")
    assert (True, httpx.ReadTimeout) == (caught.value.request_sent, type(caught.value.__cause__))


async def test_pool_exhausted_past_its_size_times_out_as_never_sent(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """Only a transport used past its size waits for a connection, bounded by the pool timeout."""
    fake.fail(Fault.hang(10), prompt="a fox")
    transport = AutoTransport(max_connections=1, backend=backend)
    url = server.base_url + "/images/generations"
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(transport.handle_async_request, request(url))
            await wait_until(lambda: fake.in_flight == 1)
            with pytest.raises((httpx.PoolTimeout, httpx.ConnectTimeout)) as caught:
                await transport.handle_async_request(request(url, pool=0.2, connect=0.2))
            tg.cancel_scope.cancel()
    finally:
        await transport.aclose()
    assert isinstance(caught.value, _NEVER_SENT)


async def test_keep_alive_reuses_one_connection(
    client: AsyncImageClient, server: FakeServer
) -> None:
    """Sequential calls, downloads included, share connections instead of opening new ones."""
    for n in range(10):
        response = await client.generate(f"fox {n}")
        await response.data[0].read()
    assert (1, 1) == (server.connections_opened, server.cdn_connections_opened)


async def test_concurrent_calls_open_no_more_connections_than_the_bound(
    client: AsyncImageClient, server: FakeServer, fake: FakeLinkAI
) -> None:
    """200 calls at a bound of 8 open at most 8 connections (the pool is reused)."""
    fake.latency = 0.005
    async with anyio.create_task_group() as tg:
        for n in range(200):
            tg.start_soon(client.generate, f"fox {n}")
    assert 200 == fake.images_generated
    assert server.connections_opened <= 8


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for 500 client and 500 server sockets in this one process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_files")
async def test_500_way_fan_out_completes_without_pool_timeouts(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """500 calls at max_concurrency=500 all run at once and all succeed."""
    fake.latency = 1.0
    errors: list[BaseException] = []

    async def one(n: int) -> None:
        try:
            await many.generate(f"fox {n}")
        except LinkAIError as exc:
            errors.append(exc)

    async with AsyncImageClient(
        fake.api_key,
        base_url=server.base_url,
        default_model=MODEL,
        max_retries=0,
        max_concurrency=500,
        transport=build_transport(500, backend),
    ) as many:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(500):
                    tg.start_soon(one, n)
    assert ([], 500) == (errors, fake.images_generated)
    assert server.connections_opened <= 500


async def test_download_streams_and_saves(client: AsyncImageClient, tmp_path: Path) -> None:
    """A generated image downloads through the same transport, read whole or saved to a file."""
    response = await client.generate("a fox", size="2K", aspect_ratio="16:9")
    image = response.data[0]
    data = await image.read()
    saved = await image.save(tmp_path / "fox.png")
    assert (b"\x89PNG", data) == (data[:4], saved.read_bytes())


async def test_a_large_body_streams_in_chunks(backend: HTTPBackend) -> None:
    """A 3 MB body arrives as several chunks through httpx's streaming API."""
    body = b"x" * 3_000_000
    with _Origin(body) as origin:
        async with (
            httpx.AsyncClient(transport=build_transport(4, backend)) as http,
            http.stream("GET", f"{origin}/big") as response,
        ):
            chunks = [chunk async for chunk in response.aiter_raw()]
    assert (len(body), True) == (sum(map(len, chunks)), len(chunks) > 1)


async def test_redirects_are_left_to_httpx(backend: HTTPBackend) -> None:
    """The transport hands a 302 up; httpx follows it when asked to."""
    with _Origin(b"final") as origin:
        async with httpx.AsyncClient(transport=build_transport(4, backend)) as http:
            first = await http.get(f"{origin}/start")
            followed = await http.get(f"{origin}/start", follow_redirects=True)
    assert (302, 200, b"final") == (first.status_code, followed.status_code, followed.content)


async def test_aclose_closes_every_connection(
    client: AsyncImageClient, backend: HTTPBackend
) -> None:
    """After aclose the session or pool holds nothing open (no unclosed-session warnings)."""
    await client.generate("a fox")
    transport = client._transport
    assert isinstance(transport, AutoTransport)
    inner = transport.selected
    await client.aclose()
    if isinstance(inner, AiohttpTransport):
        assert inner._session is None
    else:
        assert isinstance(inner, PooledTransport)
        assert 0 == inner.idle_connections


@pytest.mark.parametrize("promised", [100, 3_000_000], ids=["read-at-once", "streamed"])
async def test_a_body_cut_off_is_a_remote_protocol_error(
    backend: HTTPBackend, promised: int
) -> None:
    """A connection closed before the promised body ends raises httpx.RemoteProtocolError."""
    with _Origin(b"") as origin:
        async with httpx.AsyncClient(transport=build_transport(4, backend)) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"{origin}/cut-{promised}")


async def test_a_streamed_upload_arrives_whole(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """A request body from an async iterator (chunked, no length) reaches the server intact."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "gpt-image-2", '
        yield b'"prompt": "a streamed fox"}'

    headers = {"Authorization": f"Bearer {fake.api_key}"}
    async with httpx.AsyncClient(transport=build_transport(4, backend)) as http:
        response = await http.post(
            server.base_url + "/images/generations", content=body(), headers=headers
        )
    assert (200, 1) == (response.status_code, fake.attempts("a streamed fox"))


async def test_an_idle_connection_past_its_expiry_is_replaced(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """A connection idle longer than keepalive_expiry is closed, and the next call opens one."""
    transport = AutoTransport(max_connections=4, backend=backend, keepalive_expiry=0.05)
    url = server.base_url + "/images/generations"
    async with httpx.AsyncClient(transport=transport) as http:
        for _ in range(2):
            response = await http.send(request(url))
            assert 200 == response.status_code
            await anyio.sleep(0.3)
    assert 2 == server.connections_opened


async def test_a_closed_transport_refuses_requests(
    server: FakeServer, backend: HTTPBackend
) -> None:
    """After aclose, a request fails at once instead of reopening connections."""
    transport = build_transport(4, backend)
    url = server.base_url + "/images/generations"
    response = await transport.handle_async_request(request(url))
    await response.aclose()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(request(url))


async def test_a_response_outliving_aclose_closes_its_connection(
    fake: FakeLinkAI, server: FakeServer, backend: HTTPBackend
) -> None:
    """A response still open at aclose releases its connection when closed, leaving none idle."""
    transport = build_transport(4, backend)
    assert isinstance(transport, AutoTransport)
    response = await transport.handle_async_request(
        request(server.base_url + "/images/generations")
    )
    await transport.aclose()
    await response.aread()
    await response.aclose()
    inner = transport.selected
    if isinstance(inner, PooledTransport):
        assert 0 == inner.idle_connections


async def test_without_sniffio_the_running_library_is_still_known(
    monkeypatch: pytest.MonkeyPatch, anyio_backend_name: str
) -> None:
    """sniffio is optional: asyncio and trio are told apart without it."""
    monkeypatch.setitem(sys.modules, "sniffio", None)
    assert anyio_backend_name == current_async_library()


def test_outside_an_event_loop_no_library_is_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built in plain sync code, the transport waits for its first request to choose."""
    assert current_async_library() is None
    monkeypatch.setitem(sys.modules, "sniffio", None)
    assert current_async_library() is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.InvalidURL("ftp://x"), httpx.UnsupportedProtocol),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut off"), httpx.RemoteProtocolError),
        (aiohttp.ClientConnectionResetError("reset"), httpx.WriteError),
        (aiohttp.ClientOSError(104, "reset by peer"), httpx.ReadError),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
    ],
)
def test_aiohttp_errors_keep_sent_apart_from_never_sent(
    error: Exception, expected: type[httpx.TransportError]
) -> None:
    """Only connection-establishment failures map to errors the boundary reads as never sent."""
    mapped = _map_error(error, httpx.Request("POST", "http://api.test/"))
    assert expected is type(mapped)


class _Origin(ThreadedOrigin):
    """A tiny threaded HTTP server.

    ``/start`` redirects to ``/big``, which sends ``body``; ``/cut-N`` promises
    N bytes, sends a tenth of them and closes the connection.
    """

    def __init__(self, body: bytes) -> None:
        payload = body

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/start":
                    self.send_response(302)
                    self.send_header("Location", "/big")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/cut-"):
                    promised = int(self.path.removeprefix("/cut-"))
                    self.send_response(200)
                    self.send_header("Content-Length", str(promised))
                    self.end_headers()
                    self.wfile.write(b"x" * (promised // 10))
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)


def test_endpoint_builds_the_request_httpx_would() -> None:
    """The prebuilt endpoint's request is ``httpx.Request(content=...)``'s, plus Accept-Encoding."""
    from linkai_images._http.endpoint import Endpoint

    url = httpx.URL("http://127.0.0.1:8123/v1/images/generations")
    headers = {"Authorization": "Bearer sk-linkai-fake-key", "Content-Type": "application/json"}
    timeout = httpx.Timeout(30.0, connect=5.0)
    body = '{"model":"gpt-image-2","prompt":"a fox, ünïcode"}'.encode()
    built = Endpoint.build(url, headers, timeout).request(body)
    expected = httpx.Request(
        "POST", url, content=body, headers={**headers, "Accept-Encoding": "gzip, deflate"}
    )
    assert sorted(expected.headers.multi_items()) == sorted(built.headers.multi_items())
    assert (expected.method, expected.url, body, timeout.as_dict()) == (
        built.method,
        built.url,
        built.read(),
        built.extensions["timeout"],
    )


class _GzipAPI(ThreadedOrigin):
    """A generation endpoint that gzips its answer when asked, recording the request headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        seen = self.headers

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                seen.append({k.lower(): v for k, v in self.headers.items()})
                body = b'{"created": 1, "data": [{"url": "http://cdn.test/a.png"}]}'
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                if gzipped:
                    body = gzip.compress(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if gzipped:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)


async def test_compressed_answer_is_decoded_and_headers_are_the_clients(
    backend: HTTPBackend,
) -> None:
    """The client asks for gzip and reads a gzipped answer; no transport adds headers of its own."""
    api = _GzipAPI()
    with api as origin:
        async with AsyncImageClient(
            "sk-linkai-fake-key",
            base_url=f"{origin}/v1",
            max_retries=0,
            transport=build_transport(4, backend),
        ) as client:
            response = await client.generate("a fox", model=MODEL)
    sent = api.headers[0]
    assert "http://cdn.test/a.png" == response.data[0].url
    assert ("gzip, deflate", "application/json") == (sent["accept-encoding"], sent["accept"])
    assert sent["user-agent"].startswith("linkai-images/")
    assert "Bearer sk-linkai-fake-key" == sent["authorization"]


def test_header_bytes_that_are_not_utf8_fall_back_to_httpx_decoding() -> None:
    """aiohttp gets text headers: UTF-8 bytes exactly, anything else as httpx would decode it."""
    from linkai_images._http.aio import _text_headers

    utf8 = httpx.Headers([(b"x-name", "ünï".encode())])
    latin = httpx.Headers([(b"x-name", "é".encode("latin-1"))])
    assert [("x-name", "ünï")] == _text_headers(utf8)
    assert latin.multi_items() == _text_headers(latin)
