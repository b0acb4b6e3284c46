"""The lean path (no httpx.Request/Response per call) answers as the httpx path does.

On asyncio the default transport is aiohttp, and the client posts through
``AiohttpTransport.post``; on trio it is the SDK's pool, and the client posts
through ``PooledTransport.post``. An ``httpx.Response`` is built only for an
error. Each answer below is sent by a plain HTTP origin to a client on that
path (``"auto"``) and to one on httpx's transport interface over the pool
(``"httpx"``, behind a plain transport that has no lean path): results,
errors, their ``response`` and ``request``, and the headers on the wire must
be the same.
"""

from __future__ import annotations

import gzip
import http.server
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import ThreadedOrigin

from linkai_images import AsyncImageClient, LinkAIError
from linkai_images._http.aio import AiohttpTransport
from linkai_images._http.pool import PooledTransport
from linkai_images._http.transport import AutoTransport, HTTPBackend, build_transport

pytestmark = pytest.mark.anyio

KEY = "sk-linkai-lean-key"
OK = b'{"created": 1, "data": [{"url": "http://cdn.example/a.png"}]}'

#: The answer per prompt: status line, headers, body (``None``: sent without a length).
ANSWERS: dict[str, tuple[str, list[tuple[str, str]], bytes | None]] = {
    "ok": (
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("X-Request-Id", "req-1"),
            ("X-RateLimit-Remaining-Requests", "41"),
            ("x-ratelimit-reset-requests", "2s"),
        ],
        OK,
    ),
    "two ids": ("200 OK", [("X-Request-Id", "a"), ("x-request-id", "b")], OK),
    "latin-1 id": ("200 OK", [("Request-Id", "caf\xe9")], OK),
    "trace id": ("200 OK", [("X-Trace-Id", "t-1"), ("Request-Id", "r-1")], OK),
    "gzip": ("200 OK", [("Content-Encoding", "gzip")], gzip.compress(OK)),
    "broken gzip": ("200 OK", [("Content-Encoding", "gzip")], b"not gzip at all"),
    "unsized": ("200 OK", [("Content-Type", "application/json")], None),
    "not json": ("200 OK", [("Content-Type", "text/plain")], b"hello " + KEY.encode()),
    "no data": ("200 OK", [], b'{"created": 1}'),
    "429": (
        "429 Too Many Requests",
        [("Retry-After", "7"), ("X-RateLimit-Limit-Requests", "60")],
        b'{"error": {"message": "slow down", "type": "rate_limit"}}',
    ),
    "500 html": ("500 Internal Server Error", [], b"<html><title>Bad gateway</title></html>"),
    "302": ("302 Found", [("Location", "https://elsewhere.example/x")], b""),
}


class _Origin(http.server.BaseHTTPRequestHandler):
    """Answers each POST with ``ANSWERS[prompt]``; keeps the headers it was sent."""

    protocol_version = "HTTP/1.1"
    seen: list[list[tuple[str, str]]] = []  # noqa: RUF012 - one list for the handler class

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append([(k.lower(), v) for k, v in self.headers.items()])
        status, headers, content = ANSWERS[json.loads(body)["prompt"]]
        self.wfile.write(f"HTTP/1.1 {status}\r\n".encode())
        for name, value in headers:
            self.wfile.write(f"{name}: {value}\r\n".encode("latin-1"))
        if content is None:  # no Content-Length: the body ends with the connection
            self.wfile.write(b"Connection: close\r\n\r\n" + OK)
            self.close_connection = True
            return
        self.wfile.write(f"Content-Length: {len(content)}\r\n\r\n".encode() + content)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def origin() -> Iterator[str]:
    """The origin on a free loopback port; its base URL."""
    _Origin.seen = []
    with ThreadedOrigin(_Origin) as url:
        yield url + "/v1"


class _Plain(httpx.AsyncBaseTransport):
    """The pool behind httpx's transport interface alone: the client's httpx path."""

    def __init__(self) -> None:
        self._inner = build_transport(4, "httpx")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _client(origin: str, backend: HTTPBackend) -> AsyncImageClient:
    return AsyncImageClient(
        KEY,
        base_url=origin,
        default_model="gpt-image-2",
        max_retries=0,
        transport=build_transport(4, backend) if backend == "auto" else _Plain(),
    )


def _response(response: httpx.Response | None) -> dict[str, Any] | None:
    """What a user can read of an error's response and its request."""
    if response is None:
        return None
    request = response.request
    return {
        "status": response.status_code,
        "reason": response.reason_phrase,
        "http_version": response.http_version,
        "headers": response.headers.multi_items(),
        "content": response.content,
        "text": response.text,
        "request": (request.method, str(request.url), request.headers.multi_items()),
        "request_body": request.content,
    }


async def _outcome(client: AsyncImageClient, prompt: str) -> dict[str, Any]:
    try:
        answer = await client.generate(prompt)
    except LinkAIError as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "status": getattr(exc, "status_code", None),
            "retry_after": getattr(exc, "retry_after", None),
            "rate_limit_headers": getattr(exc, "rate_limit_headers", None),
            "body": getattr(exc, "body", None),
            "response": _response(getattr(exc, "response", None)),
        }
    return {
        "urls": [image.url for image in answer.data],
        "request_id": answer.request_id,
        "rate_limit_headers": dict(answer.rate_limit_headers),
    }


@pytest.mark.parametrize("prompt", sorted(ANSWERS))
async def test_each_answer_reads_the_same_on_both_paths(origin: str, prompt: str) -> None:
    """Result, typed error, its response and request, and the wire headers match httpx's path."""
    outcomes = []
    for backend in ("auto", "httpx"):
        async with _client(origin, backend) as client:
            outcomes.append(await _outcome(client, prompt))
    lean, plain = outcomes
    assert plain == lean
    sent_lean, sent_plain = _Origin.seen
    assert sorted(sent_plain) == sorted(sent_lean)


@pytest.mark.parametrize(
    ("prompt", "request_id", "limits"),
    [
        (
            "ok",
            "req-1",
            {"x-ratelimit-remaining-requests": "41", "x-ratelimit-reset-requests": "2s"},
        ),
        ("two ids", "a, b", {}),
        ("latin-1 id", "caf\xe9", {}),
        ("trace id", "r-1", {}),
    ],
)
async def test_request_id_and_rate_limit_headers_are_read(
    origin: str, prompt: str, request_id: str, limits: dict[str, str]
) -> None:
    """The request id (x-request-id, else request-id, else x-trace-id) and rate-limit headers."""
    async with _client(origin, "auto") as client:
        outcome = await _outcome(client, prompt)
    assert (request_id, limits) == (outcome["request_id"], outcome["rate_limit_headers"])


async def test_the_lean_path_is_the_one_taken(
    origin: str, anyio_backend: tuple[str, dict[str, object]]
) -> None:
    """A default client posts through the lean path: aiohttp's on asyncio, the pool's on trio."""
    async with _client(origin, "auto") as client:
        assert ["http://cdn.example/a.png"] == (await _outcome(client, "ok"))["urls"]
        transport = client._transport
        assert isinstance(transport, AutoTransport)
        expected = AiohttpTransport if anyio_backend[0] == "asyncio" else PooledTransport
        assert (expected, True) == (
            type(transport.selected),
            client._send == client._send_lean,
        )


async def test_a_refused_connection_on_the_lean_path_is_never_sent(origin: str) -> None:
    """A connection refused before sending is ``request_sent=False`` with the request attached."""
    with ThreadedOrigin(_Origin) as url:
        dead = url + "/v1"
    async with _client(dead, "auto") as client:
        with pytest.raises(LinkAIError) as caught:
            await client.generate("ok")
    error = caught.value
    assert (False, "POST", dead + "/images/generations") == (
        getattr(error, "request_sent", None),
        error.request.method,  # type: ignore[attr-defined]
        str(error.request.url),  # type: ignore[attr-defined]
    )
