"""The fake served in process: an httpx transport, both async and sync, no sockets."""

from __future__ import annotations

import time
from collections.abc import Mapping

import anyio
import httpx

from ._reply import IN_PROCESS_BASE_URL, IN_PROCESS_CDN_URL, Engine, Reply

__all__ = ["FakeTransport"]

_API_HOST = httpx.URL(IN_PROCESS_BASE_URL).host
_CDN_HOST = httpx.URL(IN_PROCESS_CDN_URL).host
_DISCONNECTED = "Server disconnected without sending a response."


def _headers(request: httpx.Request) -> Mapping[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {})
    value = timeout.get("read") if isinstance(timeout, dict) else None
    return float(value) if value is not None else None


def _response(request: httpx.Request, reply: Reply) -> httpx.Response:
    if reply.head:
        headers = [*reply.headers, ("content-length", str(len(reply.body)))]
        return httpx.Response(reply.status, headers=headers, content=b"", request=request)
    return httpx.Response(reply.status, headers=reply.headers, content=reply.body, request=request)


class FakeTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Routes ``http://linkai.fake`` to the fake API and ``http://cdn.linkai.fake`` to its CDN.

    Works under ``httpx.AsyncClient`` (latency with ``anyio.sleep``, so on
    asyncio and trio) and ``httpx.Client`` (``time.sleep``). Like a network
    transport it honours the request's read timeout (raising
    ``httpx.ReadTimeout``) and turns a dropped connection into
    ``httpx.RemoteProtocolError``; any other host gets ``httpx.ConnectError``.

    Args:
        fake: the fake to serve.
    """

    def __init__(self, fake: Engine) -> None:
        self.fake = fake

    def __repr__(self) -> str:
        return f"<FakeTransport {self.fake!r}>"

    def _route(self, request: httpx.Request, body: bytes) -> tuple[Reply, bool]:
        """The reply, and whether it came from the API (which needs ``_finish()``)."""
        method = request.method
        target = request.url.raw_path.decode("ascii")
        host = request.url.host
        if host == _API_HOST:
            reply = self.fake._handle(
                method, target, _headers(request), body, cdn_url=IN_PROCESS_CDN_URL
            )
            return reply, True
        if host == _CDN_HOST:
            return self.fake._handle_cdn(method, target, _headers(request)), False
        raise httpx.ConnectError(
            f"the fake transport serves only {_API_HOST} and {_CDN_HOST}, not {host}",
            request=request,
        )

    def _wait(self, request: httpx.Request, reply: Reply) -> tuple[float, bool]:
        """How long to wait, and whether the wait ends in a read timeout."""
        limit = _read_timeout(request)
        if limit is not None and reply.delay > limit:
            return limit, True
        return reply.delay, False

    def _outcome(self, request: httpx.Request, reply: Reply, timed_out: bool) -> httpx.Response:
        if timed_out:
            raise httpx.ReadTimeout("timed out waiting for the fake's answer", request=request)
        if not reply.respond:
            raise httpx.RemoteProtocolError(_DISCONNECTED, request=request)
        return _response(request, reply)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Serve one request from an ``httpx.AsyncClient``.

        Args:
            request: the request.

        Returns:
            The fake's response.

        Raises:
            httpx.ReadTimeout: the answer would come after the read timeout.
            httpx.RemoteProtocolError: the fake dropped the connection.
            httpx.ConnectError: a host other than the fake's two.
        """
        body = await request.aread()
        reply, from_api = self._route(request, body)
        try:
            delay, timed_out = self._wait(request, reply)
            if delay > 0:
                await anyio.sleep(delay)
            return self._outcome(request, reply, timed_out)
        finally:
            if from_api:
                self.fake._finish()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Serve one request from an ``httpx.Client``.

        Args:
            request: the request.

        Returns:
            The fake's response.

        Raises:
            httpx.ReadTimeout: the answer would come after the read timeout.
            httpx.RemoteProtocolError: the fake dropped the connection.
            httpx.ConnectError: a host other than the fake's two.
        """
        body = request.read()
        reply, from_api = self._route(request, body)
        try:
            delay, timed_out = self._wait(request, reply)
            if delay > 0:
                time.sleep(delay)
            return self._outcome(request, reply, timed_out)
        finally:
            if from_api:
                self.fake._finish()
