"""The one boundary between httpx and the SDK: a single HTTP attempt.

Everything httpx or json can raise is mapped here to the error tree of
``_exceptions.py``. Whether a failed request may have reached the platform
(and so may be generated and billed) is decided here too, because only here
is it known which httpx error happened.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs
import httpx

from .._config import mask_secret, redact_secret
from .._exceptions import (
    RATE_LIMIT_HEADER_PREFIXES,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    status_error_class,
)
from .answer import BIG_ANSWER, loads_sliced
from .stream import BytesStream, PiecesStream, StreamedRequest

__all__ = [
    "Answer",
    "Endpoint",
    "GenerationResult",
    "ParsedErrorBody",
    "Sender",
    "parse_error_body",
    "parse_retry_after",
    "post_generation",
]

#: The headers that carry a request's id, in order of preference.
_REQUEST_ID_NAMES = (b"x-request-id", b"request-id", b"x-trace-id")
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


class _NotJSON(Exception):
    """The body is not JSON this SDK can decode."""


#: ``_result``'s default: the body is still to be parsed.
_NOT_YET: Any = object()


def _loads(content: bytes, sliced: bool = False) -> Any:
    """``json.loads`` (or ``loads_sliced``) whose every failure is ``_NotJSON``.

    Nesting deeper than the interpreter's recursion limit (``[`` 2,000 times)
    is JSON no API sends; json raises ``RecursionError`` for it, not ``ValueError``.
    """
    try:
        return loads_sliced(content) if sliced else json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _NotJSON(str(exc)) from exc


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
        decoded = _loads(content)
    except _NotJSON:
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
        import html  # an error page only: html.entities costs every import ~1 ms

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
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        try:
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (OverflowError, OSError, ValueError):  # a year the platform's clock cannot hold
            return None
    if seconds != seconds or seconds == float("inf"):  # NaN or infinite: not a usable wait
        return None
    return max(0.0, seconds)


def _connection_error(
    exc: httpx.HTTPError, request: httpx.Request, redact: Callable[[str], str]
) -> APIConnectionError:
    # The transport's text may quote what the server sent (a bad status line, a header).
    detail = redact(str(exc) or type(exc).__name__)
    sent = not isinstance(exc, _NEVER_SENT)
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.PoolTimeout: "waiting for a free connection",
            httpx.WriteTimeout: "sending the request",
            httpx.ReadTimeout: "waiting for the answer",
        }.get(type(exc), "talking to the API")
        return APITimeoutError(
            f"timed out {phase} ({request.url}): {detail}",
            request=request,
            request_sent=sent,
        )
    where = "before the request was sent" if not sent else "after the request may have been sent"
    return APIConnectionError(
        f"connection to {request.url} failed {where}: {type(exc).__name__}: {detail}",
        request=request,
        request_sent=sent,
    )


def _status_error(response: httpx.Response, content: bytes, endpoint: Endpoint) -> APIStatusError:
    code = response.status_code
    headers = response.headers
    parsed = parse_error_body(code, endpoint.redact_bytes(content), headers.get("content-type", ""))
    message = endpoint.redact(parsed.message)
    if code < 400:  # 1xx, 3xx: a status this API never answers
        location = headers.get("location")
        where = f" (a redirect to {endpoint.redact(location)!r}, not followed)" if location else ""
        message = f"the API answered HTTP {code} {_reason(code)}{where}, not an answer of this API"
        if content.strip():
            message += f": {_snippet(endpoint.redact(content.decode('utf-8', 'replace')))}"
    return status_error_class(code)(
        message,
        response=response,
        body=parsed.body,
        type=parsed.type,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )


class Answer:
    """What one attempt got back: the status, the raw headers and the whole body.

    The ``httpx.Response`` it stands for (an error's ``response``) is built
    only when asked for: a successful call needs just the status, two
    headers and the body, and building a response costs more than reading
    them (``aio.AiohttpTransport.post``).

    Args:
        status_code: the HTTP status.
        raw_headers: the headers as sent, ``(name, value)`` bytes pairs.
        content: the body, read in full (and decoded, if it was encoded).
        response: the response, when the transport made one; else it is
            built from the above, ``reason`` and ``request()``.
        reason: the reason phrase of the status line.
        request: builds the request the answer is for, from ``body``.
        body: the body sent (its pieces).
    """

    __slots__ = (
        "_body",
        "_reason",
        "_request",
        "_response",
        "content",
        "raw_headers",
        "status_code",
    )

    def __init__(
        self,
        status_code: int,
        raw_headers: Sequence[tuple[bytes, bytes]],
        content: bytes,
        *,
        response: httpx.Response | None = None,
        reason: bytes = b"",
        request: Callable[[Sequence[bytes]], httpx.Request] | None = None,
        body: Sequence[bytes] = (),
    ) -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.content = content
        self._response = response
        self._reason = reason
        self._request = request
        self._body = body

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        """The answer of a response whose body was read."""
        return cls(response.status_code, response.headers.raw, response.content, response=response)

    @property
    def response(self) -> httpx.Response:
        """The ``httpx.Response``, with its ``request``, as httpx would have built it."""
        if self._response is None:
            self._response = httpx.Response(
                self.status_code,
                headers=self.raw_headers,
                content=self.content,
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": self._reason},
                request=self._request(self._body) if self._request is not None else None,
            )
        return self._response

    def header(self, name: str) -> str | None:
        """The value of the header ``name`` (any case), as ``httpx.Headers.get`` gives it.

        Repeated headers are joined with ``", "``; values are decoded as
        ASCII, else UTF-8, else Latin-1.
        """
        wanted = name.lower().encode()
        values = [value for key, value in self.raw_headers if key.lower() == wanted]
        if not values:
            return None
        if self._response is not None:  # the very decoding httpx chose for these headers
            return self._response.headers[name]
        return ", ".join(_header_text(value) for value in values)


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")  # ASCII included
    except UnicodeDecodeError:
        return value.decode("latin-1")


#: Sends a body (its pieces) to the endpoint and returns the answer, its body read.
Sender = Callable[[Sequence[bytes]], Awaitable[Answer]]


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
    secret: str = attrs.field(default="", repr=False)

    @classmethod
    def build(
        cls,
        url: httpx.URL,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
        *,
        secret: str = "",
    ) -> Endpoint:
        """The endpoint at ``url`` sending ``headers``, with ``timeout`` per attempt.

        ``secret`` (the API key) is masked in every error text built from what
        the server or the transport said.
        """
        prepared = httpx.Headers(
            {"Host": url.netloc.decode("ascii"), "Accept-Encoding": "gzip, deflate", **headers}
        )
        return cls(url, prepared, timeout.as_dict(), secret)

    def redact(self, text: str) -> str:
        """``text`` with the API key masked, for text that came from the server."""
        return redact_secret(text, self.secret)

    def redact_bytes(self, content: bytes) -> bytes:
        """``content`` with the API key masked, before it is decoded into an error."""
        if not self.secret:
            return content
        secret = self.secret.encode("utf-8", "replace")
        if secret not in content:
            return content
        return content.replace(secret, mask_secret(self.secret).encode())

    def request(self, body: bytes | Sequence[bytes]) -> httpx.Request:
        """A POST of ``body``, as ``httpx.Request(content=body)`` would build it.

        ``body`` is bytes, or pieces sent one after another without being
        joined (``stream.PiecesStream``). The body is not read into
        ``request.content`` (the transports take it from the stream); it is
        joined when someone reads that attribute (an error's request, say).
        """
        if isinstance(body, bytes):
            stream: httpx.SyncByteStream = BytesStream(body)
            size = len(body)
        elif len(body) == 1:
            stream, size = BytesStream(body[0]), len(body[0])
        else:
            stream = pieces = PiecesStream(body)
            size = pieces.size
        request = StreamedRequest(
            "POST",
            self.url,
            headers=self.headers,  # copied by httpx.Request
            stream=stream,
            extensions={"timeout": self.timeout},
        )
        request.headers["Content-Length"] = str(size)
        return request


async def post_generation(
    send: Sender, endpoint: Endpoint, body: Sequence[bytes]
) -> GenerationResult:
    """Send one attempt of ``body`` (its pieces) and return the decoded success body.

    Raises:
        APIStatusError: the API answered with an error status (the subclass
            for that status).
        APIConnectionError: no usable response; ``request_sent`` tells
            whether it may have reached the platform.
        APIResponseValidationError: a 2xx whose body is not an image response
            (not JSON, nested too deep, no 'data' list, a broken Content-Encoding).
    """
    try:
        answer = await send(body)
    except httpx.DecodingError as exc:  # an answer came; its Content-Encoding is broken
        raise APIResponseValidationError(
            f"the API answered with a body that cannot be decoded: {endpoint.redact(str(exc))}"
        ) from exc
    except httpx.HTTPError as exc:
        raise _connection_error(exc, _request_of(exc, endpoint, body), endpoint.redact) from exc
    content = answer.content
    if len(content) >= BIG_ANSWER and 200 <= answer.status_code < 300:
        # An image answered inline: parsed in a worker thread, in slices (answer.py).
        try:
            decoded = await anyio.to_thread.run_sync(_loads, content, True)
        except _NotJSON as exc:
            decoded = exc
        return _result(answer, endpoint, decoded)
    return _result(answer, endpoint)


def _request_of(exc: httpx.HTTPError, endpoint: Endpoint, body: Sequence[bytes]) -> httpx.Request:
    """The request a transport error is about: its own, else the one ``body`` makes."""
    try:
        return exc.request
    except RuntimeError:  # raised by a transport that did not attach it
        return endpoint.request(body)


def _redacted_json(content: bytes, decoded: object, endpoint: Endpoint) -> object:
    """``decoded`` again from ``content`` with the API key masked, if the key is in it."""
    redacted = endpoint.redact_bytes(content)
    if redacted is content:
        return decoded
    try:
        return _loads(redacted)
    except _NotJSON:  # the key was part of a number or a name: keep the text
        return redacted.decode("utf-8", "replace")


def _result(answer: Answer, endpoint: Endpoint, decoded: Any = _NOT_YET) -> GenerationResult:
    """The decoded success body of ``answer``, or the error it stands for.

    ``decoded`` is the body already parsed (or the ``_NotJSON`` it raised), when it was.
    """
    content = answer.content
    code = answer.status_code
    if not 200 <= code < 300:
        raise _status_error(answer.response, content, endpoint)
    try:
        if decoded is _NOT_YET:
            decoded = _loads(content)
        elif isinstance(decoded, _NotJSON):
            raise decoded
    except _NotJSON as exc:
        text = endpoint.redact(content.decode("utf-8", "replace"))
        raise APIResponseValidationError(
            f"the API answered {code} with a body that is not JSON: {_snippet(text) or '(empty)'}",
            response=answer.response,
            body=text,
        ) from exc
    if not isinstance(decoded, dict) or not isinstance(decoded.get("data"), list):
        text = endpoint.redact(content.decode("utf-8", "replace"))
        raise APIResponseValidationError(
            f"the API answered {code} without a 'data' list: {_snippet(text)}",
            response=answer.response,
            body=_redacted_json(content, decoded, endpoint),
        )
    return GenerationResult(decoded, *_read_headers(answer))


def _read_headers(answer: Answer) -> tuple[str | None, dict[str, str]]:
    """The request id and the rate-limit headers, in one pass over the raw headers."""
    ids: set[bytes] = set()
    limits: dict[str, str] = {}
    for name, value in answer.raw_headers:
        lowered = name.lower()
        if lowered in _REQUEST_ID_NAMES:
            ids.add(lowered)
        elif lowered.startswith(RATE_LIMIT_HEADER_PREFIXES):
            limits[lowered.decode("latin-1")] = value.decode("latin-1")
    for name in _REQUEST_ID_NAMES:  # by preference
        if name in ids:
            return answer.header(name.decode()), limits
    return None, limits
