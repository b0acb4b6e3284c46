"""Bodies with reference images go out as shared pieces: on the wire, the naive body exactly."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ThreadedOrigin

from linkai_images import AsyncImageClient
from linkai_images._http.endpoint import Endpoint
from linkai_images._http.stream import WRITE_SLICE, PiecesStream
from linkai_images._http.transport import HTTPBackend, build_transport

pytestmark = pytest.mark.anyio

MODEL = "gpt-image-2"
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3 * WRITE_SLICE + 1234)
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(WRITE_SLICE // 3)
URL = "https://cdn.example.com/ref.png"
MIME = {PNG[:4]: "image/png", JPEG[:4]: "image/jpeg"}


class _Received:
    """What the capturing origin saw: each request's headers and body, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0


class _CapturingAPI(ThreadedOrigin):
    """A generation endpoint recording raw bodies; answers 503 to the first ``fail_first``."""

    def __init__(self, received: _Received) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with received.lock:
                    received.requests.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    failing = received.fail_first > 0
                    received.fail_first -= 1
                status, answer = (
                    (503, b'{"error":{"message":"busy","type":"server_error"}}')
                    if failing
                    else (200, b'{"created":1,"data":[{"url":"https://cdn.example.com/o.png"}]}')
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def received() -> _Received:
    """The capturing origin's record."""
    return _Received()


@pytest.fixture
def origin(received: _Received) -> Iterator[str]:
    """A capturing generation endpoint on loopback; yields its base URL."""
    with _CapturingAPI(received) as base:
        yield base + "/v1"


@pytest.fixture(params=["auto", "httpx"])
def backend(request: pytest.FixtureRequest) -> HTTPBackend:
    """aiohttp (``auto`` on asyncio), and the SDK's pool (``httpx``, and ``auto`` on trio)."""
    return request.param  # type: ignore[no-any-return]


def naive_body(prompt: str, images: list[bytes | str]) -> bytes:
    """The body as ``json.dumps`` of the request with every image as a data URI in it."""
    sent = [
        item
        if isinstance(item, str)
        else f"data:{MIME[item[:4]]};base64,{base64.b64encode(item).decode()}"
        for item in images
    ]
    fields = {"model": MODEL, "prompt": prompt, "images": sent}
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


async def test_streamed_body_equals_the_naive_body_on_every_transport(
    origin: str, received: _Received, backend: HTTPBackend, tmp_path: Path
) -> None:
    """A path, bytes and a URL: the bytes received are json.dumps' body, with a Content-Length."""
    path = tmp_path / "ref.png"
    path.write_bytes(PNG)
    async with AsyncImageClient(
        "sk-test", base_url=origin, max_retries=0, transport=build_transport(4, backend)
    ) as client:
        await client.generate("a fox, ünïcode", model=MODEL, images=[path, JPEG, URL])
    headers, body = received.requests[0]
    expected = naive_body("a fox, ünïcode", [PNG, JPEG, URL])
    assert expected == body
    assert (str(len(expected)), None) == (
        headers.get("content-length"),
        headers.get("transfer-encoding"),
    )


async def test_retries_send_the_same_pieces_again(
    origin: str, received: _Received, backend: HTTPBackend, tmp_path: Path
) -> None:
    """Two 503s, then success: three identical bodies, each the naive body."""
    from linkai_images import set_testing

    received.fail_first = 2
    path = tmp_path / "ref.png"
    path.write_bytes(PNG)
    with set_testing():
        async with AsyncImageClient(
            "sk-test", base_url=origin, max_retries=2, transport=build_transport(4, backend)
        ) as client:
            response = await client.generate("p", model=MODEL, images=[path])
    assert 3 == response.attempts
    assert [naive_body("p", [PNG])] * 3 == [body for _, body in received.requests]


async def test_pieces_are_streamed_in_slices_never_joined() -> None:
    """The stream hands out memoryviews of the shared pieces, at most WRITE_SLICE bytes each."""
    pieces = (b'{"images":["', PNG, b'"]}')
    request = Endpoint.build(
        httpx.URL("http://127.0.0.1:9/v1/images/generations"), {}, httpx.Timeout(5.0)
    ).request(pieces)
    assert isinstance(request.stream, PiecesStream)
    chunks = [chunk async for chunk in request.stream]
    assert all(isinstance(chunk, memoryview) for chunk in chunks)
    assert all(chunk.obj is PNG for chunk in chunks[1:-1])  # type: ignore[attr-defined]
    assert max(len(chunk) for chunk in chunks) <= WRITE_SLICE
    assert b"".join(pieces) == b"".join(chunks)
    assert str(len(b"".join(pieces))) == request.headers["Content-Length"]


async def test_an_error_carries_a_readable_request_body(
    origin: str, received: _Received, tmp_path: Path
) -> None:
    """The request on an API error joins its pieces when asked for its content."""
    from linkai_images import ServiceUnavailableError

    received.fail_first = 1
    path = tmp_path / "ref.png"
    path.write_bytes(PNG)
    async with AsyncImageClient("sk-test", base_url=origin, max_retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.generate("p", model=MODEL, images=[path])
    assert naive_body("p", [PNG]) == caught.value.response.request.content
