"""The loopback server: its HTTP/1.1 handling, lifecycle, concurrency and connection counts."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import anyio
import httpx
import pytest

from linkai_images.testing import FakeLinkAI, FakeServer, png_size

# One TLS context for every client: httpx would load the CA bundle per client (slow).
TLS = ssl.create_default_context()
BODY = json.dumps({"model": "gpt-image-2", "prompt": "a red kite"}).encode()


def raw_request(fake: FakeLinkAI, body: bytes = BODY, extra: str = "") -> bytes:
    head = (
        "POST /v1/images/generations HTTP/1.1\r\nHost: fake\r\n"
        f"Authorization: Bearer {fake.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def connect(server: FakeServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One response from the socket: status line, headers (lower-cased), body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    status, *lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + length:
        buffer += sock.recv(65536)
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return status.encode(), headers, body


def is_closed(sock: socket.socket) -> bool:
    return b"" == sock.recv(1)


def test_urls_name_two_ephemeral_loopback_ports(server: FakeServer) -> None:
    """base_url is http://127.0.0.1:<port>/v1 and the CDN is another port."""
    assert f"http://127.0.0.1:{server.port}/v1" == server.base_url
    assert f"http://127.0.0.1:{server.cdn_port}" == server.cdn_url
    assert 0 not in (server.port, server.cdn_port)
    assert server.port != server.cdn_port
    assert server.running


def test_keep_alive_reuses_one_connection(server: FakeServer) -> None:
    """Twenty requests from one httpx client travel on one TCP connection."""
    headers = {"Authorization": f"Bearer {server.fake.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, verify=TLS) as client:
        for _ in range(20):
            assert 200 == client.post("/images/generations", content=BODY).status_code
    assert 1 == server.connections_opened
    assert 0 == server.cdn_connections_opened


def test_connection_close_is_honoured(server: FakeServer, fake: FakeLinkAI) -> None:
    """A request with Connection: close is answered with Connection: close, then closed."""
    with connect(server) as sock:
        sock.sendall(raw_request(fake, extra="Connection: close\r\n"))
        status, headers, _ = read_response(sock, bytearray())
        assert (b"HTTP/1.1 200 OK", "close") == (status, headers["connection"])
        assert is_closed(sock)


def test_http_1_0_closes_unless_kept_alive(server: FakeServer, fake: FakeLinkAI) -> None:
    """An HTTP/1.0 request without keep-alive gets its answer and a closed connection."""
    with connect(server) as sock:
        sock.sendall(raw_request(fake).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        assert b"HTTP/1.1 200 OK" == read_response(sock, bytearray())[0]
        assert is_closed(sock)


def test_chunked_request_bodies_are_read(server: FakeServer, fake: FakeLinkAI) -> None:
    """A chunked body, split over several writes with an extension and a trailer, is decoded."""
    head = raw_request(fake, b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    half = len(BODY) // 2
    parts = [
        head,
        f"{half:x};ext=1\r\n".encode() + BODY[:half] + b"\r\n",
        f"{len(BODY) - half:X}\r\n".encode() + BODY[half:] + b"\r\n",
        b"0\r\nX-Trailer: yes\r\n\r\n",
    ]
    with connect(server) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.01)
        assert b"HTTP/1.1 200 OK" == read_response(sock, bytearray())[0]
    assert {"model": "gpt-image-2", "prompt": "a red kite"} == fake.requests[0].body


def test_pipelined_requests_are_answered_in_order(server: FakeServer, fake: FakeLinkAI) -> None:
    """Three requests written at once (one slow) come back in request order."""
    fake.latency = lambda rng: 0.1 if fake.request_count == 1 else 0.0
    bodies = [json.dumps({"model": "gpt-image-2", "prompt": f"p{i}"}).encode() for i in range(3)]
    with connect(server) as sock:
        sock.sendall(b"".join(raw_request(fake, body) for body in bodies))
        buffer = bytearray()
        ids = [read_response(sock, buffer)[1]["x-request-id"] for _ in bodies]
    assert [r.request_id for r in fake.requests] == ids
    assert ["p0", "p1", "p2"] == [r.prompt for r in fake.requests]


def test_expect_100_continue_gets_an_interim_answer(server: FakeServer, fake: FakeLinkAI) -> None:
    """A client that waits for 100 Continue before the body gets it, then the answer."""
    request = raw_request(fake, extra="Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    with connect(server) as sock:
        sock.sendall(head + b"\r\n\r\n")
        assert b"HTTP/1.1 100 Continue\r\n\r\n" == sock.recv(1024)
        sock.sendall(body)
        assert b"HTTP/1.1 200 OK" == read_response(sock, bytearray())[0]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n\r\n",
        b"POST /v1/images/generations HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST /v1/images/generations HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /v1/images/generations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_get_400_and_a_closed_connection(
    server: FakeServer, request_bytes: bytes
) -> None:
    """A broken request line, header, length or chunk is 400 with Connection: close."""
    with connect(server) as sock:
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock, bytearray())
        assert (b"HTTP/1.1 400 Bad Request", "close") == (status, headers["connection"])
        assert "invalid_request_error" == json.loads(body)["error"]["type"]
        assert is_closed(sock)


def test_cdn_is_served_on_its_own_port(server: FakeServer, fake: FakeLinkAI) -> None:
    """The image URL's origin is the CDN port, counted apart from the API's connections."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, verify=TLS) as client:
        url = client.post("/images/generations", content=BODY).json()["data"][0]["url"]
        image = client.get(url)
    assert url.startswith(server.cdn_url + "/")
    assert (128, 72) == png_size(image.content)
    assert (1, 1) == (server.connections_opened, server.cdn_connections_opened)


def test_the_api_port_does_not_serve_images(server: FakeServer, fake: FakeLinkAI) -> None:
    """An image path asked of the API origin is a JSON 404, not a PNG."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with httpx.Client(headers=headers, verify=TLS) as client:
        url = client.post(server.base_url + "/images/generations", content=BODY).json()
        path = url["data"][0]["url"].removeprefix(server.cdn_url)
        response = client.get(server.base_url.removesuffix("/v1") + path)
    assert 404 == response.status_code
    assert "error" in response.json()


@pytest.mark.anyio
async def test_concurrency_is_measured(server: FakeServer, fake: FakeLinkAI) -> None:
    """With latency, 12 concurrent requests show as 12 in flight at the peak, 0 after."""
    fake.latency = 0.2
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=server.base_url, verify=TLS, limits=limits) as client:
        client.headers["Authorization"] = f"Bearer {fake.api_key}"

        async def post() -> None:
            await client.post("/images/generations", content=BODY)

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(post)
    assert (12, 0, 12) == (fake.max_in_flight, fake.in_flight, server.connections_opened)


def test_threads_can_share_one_fake(server: FakeServer, fake: FakeLinkAI) -> None:
    """Eight threads of requests are all counted: the state is thread-safe."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}

    def work() -> None:
        with httpx.Client(base_url=server.base_url, headers=headers, verify=TLS) as client:
            for _ in range(25):
                client.post("/images/generations", content=BODY)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (200, 200, 200, 0) == (
        fake.request_count,
        fake.images_generated,
        fake.attempts("a red kite"),
        fake.in_flight,
    )


def test_a_client_that_leaves_mid_request_is_no_longer_in_flight(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """Closing the connection while the answer is delayed ends the request on the fake's side."""
    fake.latency = 30
    with connect(server) as sock:
        sock.sendall(raw_request(fake))
        deadline = time.monotonic() + 5
        while fake.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 1 == fake.in_flight
    deadline = time.monotonic() + 5
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 0 == fake.in_flight


def test_stop_is_idempotent_and_start_twice_is_refused(fake: FakeLinkAI) -> None:
    """stop() may be called again; a server starts only once; a busy port raises OSError."""
    server = fake.serve().start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    with pytest.raises(OSError, match="address already in use"), fake.serve(port=server.port):
        pass
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=1)


def test_one_fake_may_be_served_twice_at_once(fake: FakeLinkAI) -> None:
    """Two servers (and the in-process transport) over one fake share its state."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    with (
        fake.serve() as one,
        fake.serve() as two,
        httpx.Client(headers=headers, verify=TLS) as client,
    ):
        for server in (one, two):
            response = client.post(server.base_url + "/images/generations", content=BODY)
            assert 200 == response.status_code
    with httpx.Client(transport=fake.transport(), headers=headers) as client:
        client.post(fake.base_url + "/images/generations", content=BODY)
    assert 3 == fake.attempts("a red kite")
