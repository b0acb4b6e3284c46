"""The one boundary between httpx and the SDK: a single HTTP attempt.

Everything httpx or json can raise is mapped here to the error tree of
``_exceptions.py``. Whether a failed request may have reached the platform
(and so may be generated and billed) is decided here too, because only here
is it known which httpx error happened.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx

from .._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    LinkAIError,
    rate_limit_headers,
    status_error_class,
)

__all__ = [
    "Endpoint",
    "GenerationResult",
    "ParsedErrorBody",
    "Sender",
    "parse_error_body",
    "parse_retry_after",
    "post_generation",
]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-trace-id")
_MAX_SNIPPET = 200

#: httpx errors raised before any byte of the request could have been sent.
_NEVER_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


@attrs.frozen
class GenerationResult:
    """A successful attempt: the decoded body and what the headers told."""

    body: Mapping[str, Any]
    request_id: str | None
    rate_limit_headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ParsedErrorBody:
    """What an error response said, however it was written."""

    message: str
    type: str | None
    body: object


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SNIPPET else text[: _MAX_SNIPPET - 1] + "…"


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def parse_error_body(status_code: int, content: bytes, content_type: str = "") -> ParsedErrorBody:
    """Read an error response of any shape into a message, a type and the body.

    The platform sends ``{"error": {"message", "type"}}``; a proxy in the way
    may send HTML, plain text or nothing. This never raises.
    """
    phrase = _reason(status_code)
    if not content.strip():
        return ParsedErrorBody(f"HTTP {status_code} {phrase} with an empty body", None, None)
    try:
        decoded = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        decoded = None
    else:
        if isinstance(decoded, dict):
            error = decoded.get("error")
            if isinstance(error, dict):
                message = error.get("message")
                type_ = error.get("type")
                return ParsedErrorBody(
                    str(message) if message not in (None, "") else f"HTTP {status_code} {phrase}",
                    str(type_) if type_ is not None else None,
                    decoded,
                )
            if isinstance(error, str) and error:
                return ParsedErrorBody(error, None, decoded)
            if isinstance(decoded.get("message"), str):
                return ParsedErrorBody(decoded["message"], None, decoded)
        return ParsedErrorBody(
            f"HTTP {status_code} {phrase}: {_snippet(content.decode('utf-8', 'replace'))}",
            None,
            decoded,
        )
    text = content.decode("utf-8", "replace")
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _TITLE.search(content)
        shown = title.group(1).decode("utf-8", "replace") if title else _TAGS.sub(" ", text)
        return ParsedErrorBody(
            f"HTTP {status_code} {phrase}: an HTML page, likely from a proxy "
            f"or gateway in front of the API: {_snippet(html.unescape(shown))}",
            None,
            text,
        )
    return ParsedErrorBody(f"HTTP {status_code} {phrase}: {_snippet(text)}", None, text)


def _reason(status_code: int) -> str:
    return httpx.codes.get_reason_phrase(status_code) or "error"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN or infinite: not a usable wait
        return None
    return max(0.0, seconds)


def _connection_error(exc: httpx.HTTPError, request: httpx.Request) -> APIConnectionError:
    sent = not isinstance(exc, _NEVER_SENT)
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.PoolTimeout: "waiting for a free connection",
            httpx.WriteTimeout: "sending the request",
            httpx.ReadTimeout: "waiting for the answer",
        }.get(type(exc), "talking to the API")
        return APITimeoutError(
            f"timed out {phase} ({request.url.host}): {exc or type(exc).__name__}",
            request=request,
            request_sent=sent,
        )
    where = "before the request was sent" if not sent else "after the request may have been sent"
    return APIConnectionError(
        f"connection to {request.url.host} failed {where}: {type(exc).__name__}: {exc}",
        request=request,
        request_sent=sent,
    )


def _status_error(response: httpx.Response, content: bytes) -> APIStatusError:
    parsed = parse_error_body(
        response.status_code, content, response.headers.get("content-type", "")
    )
    cls = status_error_class(response.status_code)
    return cls(
        parsed.message,
        response=response,
        body=parsed.body,
        type=parsed.type,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


class _BodyChunks:
    """An async iterator over one bytes body that is not an async generator."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._body is None:
            raise StopAsyncIteration
        body, self._body = self._body, None
        return body


class _Body(httpx.ByteStream):
    """httpx's in-memory body, minus its async generator.

    ``ByteStream.__aiter__`` is an async generator; when a request is cancelled
    mid-send on trio it is left unfinished and garbage-collected with a
    ``ResourceWarning`` (encode/httpx#3686). A plain iterator has nothing to finalize.
    """

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _BodyChunks(self._body)


#: Sends a request and returns the response with its body read.
Sender = Callable[[httpx.Request], Awaitable[httpx.Response]]


@attrs.frozen
class Endpoint:
    """The generation endpoint of one client: its URL, headers and timeouts, built once.

    ``httpx.Request(content=...)`` re-normalises every header and runs the
    body through httpx's encoder on each request: a fifth of the client's
    own CPU per call. The headers here are normalised once (``Host``
    included, as httpx would add it) and each request only gets its
    ``Content-Length``. ``Accept-Encoding`` is sent as httpx's own clients
    send it, so every transport puts the same headers on the wire.
    """

    url: httpx.URL
    headers: httpx.Headers
    timeout: dict[str, float | None]  # httpx's ``Timeout.as_dict()``, shared, never changed

    @classmethod
    def build(cls, url: httpx.URL, headers: Mapping[str, str], timeout: httpx.Timeout) -> Endpoint:
        """The endpoint at ``url`` sending ``headers``, with ``timeout`` per attempt."""
        prepared = httpx.Headers(
            {"Host": url.netloc.decode("ascii"), "Accept-Encoding": "gzip, deflate", **headers}
        )
        return cls(url, prepared, timeout.as_dict())

    def request(self, body: bytes) -> httpx.Request:
        """A POST of ``body``, as ``httpx.Request(content=body)`` would build it.

        The body is not read into ``request.content`` (the transports take
        it from the stream); the error paths read it before handing the
        request to an exception, where a user may look at it.
        """
        request = httpx.Request(
            "POST",
            self.url,
            headers=self.headers,  # copied by httpx.Request
            stream=_Body(body),
            extensions={"timeout": self.timeout},
        )
        request.headers["Content-Length"] = str(len(body))
        return request


async def post_generation(send: Sender, endpoint: Endpoint, body: bytes) -> GenerationResult:
    """Send one attempt and return the decoded success body.

    Raises:
        APIStatusError: the API answered with an error status (the subclass
            for that status).
        APIConnectionError: no usable response; ``request_sent`` tells
            whether it may have reached the platform.
        APIResponseValidationError: a 200 whose body is not an image response.
    """
    request = endpoint.request(body)
    try:
        try:
            response = await send(request)
        except httpx.HTTPError as exc:
            raise _connection_error(exc, request) from exc
        return _result(response)
    except LinkAIError:
        request.read()  # the error carries the request: make its body readable there
        raise


def _result(response: httpx.Response) -> GenerationResult:
    """The decoded success body of ``response``, or the error it stands for."""
    content = response.content
    if response.status_code >= 400:
        raise _status_error(response, content)
    try:
        decoded = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIResponseValidationError(
            f"the API answered {response.status_code} with a body that is not JSON: "
            f"{_snippet(content.decode('utf-8', 'replace')) or '(empty)'}",
            response=response,
            body=content.decode("utf-8", "replace"),
        ) from exc
    if not isinstance(decoded, dict) or not isinstance(decoded.get("data"), list):
        raise APIResponseValidationError(
            f"the API answered {response.status_code} without a 'data' list: "
            f"{_snippet(json.dumps(decoded, ensure_ascii=False))}",
            response=response,
            body=decoded,
        )
    headers = response.headers
    request_id = next(
        (value for name in _REQUEST_ID_HEADERS if (value := headers.get(name)) is not None), None
    )
    return GenerationResult(decoded, request_id, rate_limit_headers(headers.raw))
