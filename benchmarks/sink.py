"""A loopback API that swallows request bodies: the server of ``bench_refimg.py``.

Run: ``python benchmarks/sink.py --latency 0.5 [--answer-mb 20]``; prints
``LINKAI_BASE_URL=...`` and serves until killed.

The SDK's own fake (``python -m linkai_images.testing serve``) parses every
body as JSON, decodes every reference image and keeps the last 1,000 requests:
about 55 ms of its CPU and 13 MB of its memory per 10 MB image, so 256 such
requests measure the fake (14 s), not the client. This server counts the
body's bytes as they arrive (checking that exactly ``Content-Length`` came,
and that the body starts with ``{`` and ends with ``}``), keeps none of them, and answers each
``POST`` after ``--latency`` seconds with a fixed image answer: a URL, or with
``--answer-mb`` an inline ``b64_json`` image of that many MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import sys

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def answer_body(answer_mb: float) -> bytes:
    """The JSON answered to every request."""
    if answer_mb <= 0:
        item = '"url":"http://127.0.0.1:9/img.png"'
    else:
        data = PNG_MAGIC + os.urandom(int(answer_mb * 2**20) - len(PNG_MAGIC))
        item = f'"b64_json":"{base64.b64encode(data).decode()}"'
    return f'{{"created":1700000000,"data":[{{{item}}}]}}'.encode()


class _Connection(asyncio.Protocol):
    def __init__(self, latency: float, reply: bytes, error: bytes) -> None:
        self._latency = latency
        self._reply = reply
        self._error = error
        self._head = bytearray()
        self._remaining = -1  # body bytes still to come; -1 while reading a head
        self._first = b""
        self._last = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._remaining < 0:
                self._head += view
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._head[:end]).decode("latin-1").lower()
                view = memoryview(bytes(self._head[end + 4 :]))
                self._head.clear()
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip() == "content-length":
                        length = int(value)
                    if name.strip() == "transfer-encoding":
                        length = -2  # chunked: refused, the client must send a length
                self._remaining = length
                self._first = b""
                if length == -2:
                    self._answer(self._error)
                    return
                if length == 0:
                    self._done()
                continue
            take = min(len(view), self._remaining)
            if not self._first and take:
                self._first = bytes(view[:1])
            if take:
                self._last = bytes(view[take - 1 : take])
            self._remaining -= take
            view = view[take:]
            if self._remaining == 0:
                self._done()

    def _done(self) -> None:
        self._remaining = -1
        ok = self._first == b"{" and self._last == b"}"
        reply = self._reply if ok else self._error
        asyncio.get_running_loop().call_later(self._latency, self._answer, reply)

    def _answer(self, reply: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(reply)


async def serve(latency: float, answer_mb: float) -> None:
    body = answer_body(answer_mb)
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    error_json = b'{"error":{"message":"bad body","type":"invalid_request_error"}}'
    error = (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(error_json)}\r\n\r\n".encode()
        + error_json
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(latency, reply, error), "127.0.0.1", 0, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    print(f"LINKAI_BASE_URL=http://127.0.0.1:{port}/v1", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--answer-mb", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.latency, args.answer_mb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
