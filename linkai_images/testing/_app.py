"""The fake platform: its rules and its state, and no I/O.

Both front ends, the in-process transport (``_transport.py``) and the loopback
server (``_server.py``), hand every request to :meth:`FakeLinkAI._handle` (the
API origin) or :meth:`FakeLinkAI._handle_cdn` (the CDN origin) and get back a
:class:`Reply`: what to answer, after how long, or to close the connection
without answering. The front end does the waiting and calls
:meth:`FakeLinkAI._finish` when the request is over, which keeps the in-flight
count true.

The rules are the platform documentation's (``linkai-image-api.zh.txt``) and
the model table is the SDK's own ``CATALOG``. They are checked here again
rather than through the SDK's validation helpers, so that a bug there is
caught by tests against this fake instead of copied into it.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import hmac
import json
import os
import random
import re
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal, TypeAlias

import attrs

from .._catalog import ALL_ASPECT_RATIOS, CATALOG, SIZE_TIERS, ModelSpec, resolve_pixels
from ._png import make_png, make_png_b64

if TYPE_CHECKING:
    from ._server import FakeServer
    from ._transport import FakeTransport

__all__ = [
    "CDN_PATH_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_BANNED_WORDS",
    "DEFAULT_RECORD_LIMIT",
    "DEFAULT_SCALE",
    "GENERATIONS_PATH",
    "IN_PROCESS_BASE_URL",
    "IN_PROCESS_CDN_URL",
    "FakeLinkAI",
    "Fault",
    "Latency",
    "RecordedCdnRequest",
    "RecordedRequest",
    "ReferenceImage",
    "Reply",
    "error_body",
    "inspect_image",
]

#: The API key a fake accepts unless told otherwise.
DEFAULT_API_KEY = "sk-linkai-fake-key"
#: Words that make content moderation reject a prompt (409), matched case-insensitively.
DEFAULT_BANNED_WORDS: frozenset[str] = frozenset({"forbidden"})
#: Served images are the platform's pixel size divided by this, to stay small.
DEFAULT_SCALE = 16
#: How many recent requests (and CDN requests) are kept for inspection.
DEFAULT_RECORD_LIMIT = 10_000
#: The API base URL of the in-process transport (no sockets behind it).
IN_PROCESS_BASE_URL = "http://linkai.fake/v1"
#: The CDN origin of the in-process transport.
IN_PROCESS_CDN_URL = "http://cdn.linkai.fake"
#: The one API path.
GENERATIONS_PATH = "/v1/images/generations"
#: Where generated images live on the CDN origin.
CDN_PATH_PREFIX = "/user/generate/"

#: Seconds before an answer: a number, or a function of a seeded ``random.Random``.
Latency: TypeAlias = float | Callable[[random.Random], float]

FaultKind = Literal["status", "drop", "hang", "malformed_json", "html_error", "empty_error"]

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "insufficient_quota",
    409: "content_policy_violation",
    429: "rate_limit_error",
}

_DEFAULT_MESSAGES: Mapping[int, str] = {
    429: "too many requests, slow down",
    500: "internal error",
    502: "bad gateway",
    503: "the upstream image service failed; try again",
    504: "the upstream image service timed out",
}

_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS: Mapping[int, str] = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

_JSON = ("content-type", "application/json")
_MALFORMED_BODY = b'{"created": 1700000000, "data": [{"url": "http://cdn.linkai.fake/user/gen'


def _error_type(status_code: int) -> str:
    default = "server_error" if status_code >= 500 else "invalid_request_error"
    return _ERROR_TYPES.get(status_code, default)


@attrs.frozen(kw_only=True)
class Fault:
    """A failure the fake serves instead of the platform's answer.

    Build one with the class methods (:meth:`status`, :meth:`drop`,
    :meth:`hang`, :meth:`malformed_json`, :meth:`html_error`,
    :meth:`empty_error`) and hand it to :meth:`FakeLinkAI.fail` or
    :meth:`FakeLinkAI.fail_randomly`. A faulted request spends no credits.

    Attributes:
        kind: which failure.
        status_code: the HTTP status answered, for the kinds that answer.
        retry_after: the ``Retry-After`` header value (seconds, or a string
            sent as is, e.g. an HTTP date), or ``None`` for no header.
        seconds: how long a ``hang`` lasts before the connection is closed.
        message: the ``error.message`` of a ``status`` fault.
    """

    kind: FaultKind
    status_code: int | None = None
    retry_after: float | str | None = None
    seconds: float = 0.0
    message: str | None = None

    @classmethod
    def status(
        cls,
        status_code: int = 503,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> Fault:
        """An error answer in the platform's JSON shape.

        Args:
            status_code: the HTTP status, e.g. 503, 429, 500.
            retry_after: a ``Retry-After`` header: seconds, or a string sent as is.
            message: ``error.message``; a stock message for the status when ``None``.

        Returns:
            The fault.
        """
        return cls(kind="status", status_code=status_code, retry_after=retry_after, message=message)

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without answering.

        The request has reached the platform: a client cannot know whether
        it was generated. Over the in-process transport this raises
        ``httpx.RemoteProtocolError``, as a real server disconnect does.

        Returns:
            The fault.
        """
        return cls(kind="drop")

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Answer nothing for ``seconds``, then close the connection.

        Stopping the server does not wait for a hanging request.

        Args:
            seconds: how long to stay silent.

        Returns:
            The fault.
        """
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 with ``application/json`` whose body is cut off mid-document.

        Returns:
            The fault.
        """
        return cls(kind="malformed_json", status_code=200)

    @classmethod
    def html_error(cls, status_code: int = 502) -> Fault:
        """Answer an HTML error page, as a reverse proxy in front of the API does.

        Args:
            status_code: the HTTP status.

        Returns:
            The fault.
        """
        return cls(kind="html_error", status_code=status_code)

    @classmethod
    def empty_error(cls, status_code: int = 503) -> Fault:
        """Answer an error status with an empty body.

        Args:
            status_code: the HTTP status.

        Returns:
            The fault.
        """
        return cls(kind="empty_error", status_code=status_code)


@attrs.frozen(kw_only=True)
class ReferenceImage:
    """One entry of a request's ``images`` as the fake understood it.

    Attributes:
        url: the http(s) URL, when the entry was one.
        mime_type: for a data URI, the type its decoded bytes really are.
        size: for a data URI, the decoded byte count.
        error: why the entry was rejected, or ``None`` when it is valid.
    """

    url: str | None = None
    mime_type: str | None = None
    size: int | None = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        """Whether the platform accepts this entry."""
        return self.error is None


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request to the API origin, as received.

    Attributes:
        request_id: the ``X-Request-Id`` answered.
        method: the HTTP method.
        path: the request target, query included.
        headers: the headers, names lower-cased (repeats joined with ``", "``).
        body: the parsed JSON body, or ``None`` when it was not JSON.
        prompt: ``body["prompt"]`` when it is a string.
        model: ``body["model"]`` when it is a string.
        images: each reference image, checked.
        status: the HTTP status answered; ``None`` when the connection was
            closed without an answer (``drop``, ``hang``).
        fault: the injected fault, or ``None`` when the platform's rules answered.
        received_at: ``time.time()`` on arrival.
    """

    request_id: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: object
    prompt: str | None
    model: str | None
    images: tuple[ReferenceImage, ...]
    status: int | None
    fault: Fault | None
    received_at: float


@attrs.frozen(kw_only=True)
class RecordedCdnRequest:
    """One request to the CDN origin.

    Attributes:
        method: the HTTP method.
        path: the request target.
        headers: the headers, names lower-cased.
        status: the HTTP status answered.
        received_at: ``time.time()`` on arrival.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    status: int
    received_at: float


@attrs.frozen
class Reply:
    """What a front end does with one request (internal to the fake).

    ``respond=False`` means: wait ``delay`` seconds, then close the connection
    without an answer. ``head=True`` means: send ``len(body)`` as the length,
    but not the body.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delay: float = 0.0
    respond: bool = True
    head: bool = False


@attrs.frozen
class _Job:
    width: int
    height: int
    rgb: tuple[int, int, int]
    response_format: str


@attrs.frozen
class _Rejection:
    status: int
    message: str


_DATA_URI = re.compile(r"data:image/(png|jpeg|webp|gif);base64,", re.ASCII)
_NOT_JSON = object()


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect_image(item: object) -> ReferenceImage:
    """Check one ``images`` entry: an http(s) URL, or a true base64 image data URI."""
    if not isinstance(item, str):
        return ReferenceImage(error="is not a string")
    head = item[:8].lower()
    if head.startswith(("http://", "https://")):
        rest = item.split("//", 1)[1]
        host = rest.split("/", 1)[0].split("?", 1)[0]
        if not host or any(c.isspace() for c in item):
            return ReferenceImage(error="is not a valid http(s) URL")
        return ReferenceImage(url=item)
    if head.startswith("data:"):
        match = _DATA_URI.match(item)
        if match is None:
            return ReferenceImage(
                error="is a data URI but not data:image/<png|jpeg|webp|gif>;base64,..."
            )
        try:
            data = base64.b64decode(item[match.end() :], validate=True)
        except (binascii.Error, ValueError):
            return ReferenceImage(error="is a data URI whose base64 payload is invalid")
        declared = f"image/{match[1]}"
        sniffed = _sniff(data)
        if sniffed != declared:
            return ReferenceImage(
                error=f"says {declared} but its bytes are {sniffed or 'not an image'}"
            )
        return ReferenceImage(mime_type=sniffed, size=len(data))
    return ReferenceImage(error="is neither an http(s) URL nor a data:image/... base64 URI")


def _json_body(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(status_code: int, message: str) -> bytes:
    """The platform's error JSON: ``{"error": {"message": ..., "type": ...}}``."""
    return _json_body({"error": {"message": message, "type": _error_type(status_code)}})


def _format_retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


@functools.lru_cache(maxsize=256)
def _scaled_pixels(size: str, aspect_ratio: str, scale: int) -> tuple[int, int]:
    width, height = resolve_pixels(size, aspect_ratio)
    return max(1, width // scale), max(1, height // scale)


@functools.lru_cache(maxsize=4096)
def _colour(prompt: str) -> tuple[int, int, int]:
    r, g, b = hashlib.blake2b(prompt.encode(), digest_size=3).digest()
    return r, g, b


def _xor(data: bytes, mask: bytes) -> bytes:
    value = int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")
    return value.to_bytes(len(data), "big")


class FakeLinkAI:
    """A faithful fake of the LinkAI image API and its CDN, with fault injection.

    One object holds the configuration (key, credits, moderation words, extra
    models, latency, faults) and everything observed (requests, attempts per
    prompt, concurrency, CDN hits). Serve it in process with
    :meth:`transport` or on loopback with :meth:`serve`; both may run at
    once. Every method is thread-safe: the server runs in its own thread.

    Args:
        api_key: the only key accepted in ``Authorization: Bearer <key>``.
        credits: successes left before 406; ``None`` is unlimited.
        banned_words: prompts containing one (case-insensitive) get 409.
        extra_models: model codes accepted besides the catalog's, unchecked.
        latency: seconds before each API answer, or a function of a seeded
            ``random.Random`` returning them (e.g. ``lambda r: r.uniform(0.1, 0.3)``).
        seed: seeds the random faults and latency, for repeatable runs;
            ``None`` seeds from the operating system.
        default_response_format: ``"url"`` (the platform's) or ``"b64_json"``,
            used when a request does not say.
        scale: served images are the platform's pixel size divided by this
            (1 serves full-size images).
        record_limit: how many recent requests are kept for inspection;
            counters stay exact beyond it.

    Raises:
        ValueError: a ``scale`` below 1 or an unknown ``default_response_format``.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        credits: int | None = None,
        banned_words: Iterable[str] = DEFAULT_BANNED_WORDS,
        extra_models: Iterable[str] = (),
        latency: Latency = 0.0,
        seed: int | None = 0,
        default_response_format: Literal["url", "b64_json"] = "url",
        scale: int = DEFAULT_SCALE,
        record_limit: int = DEFAULT_RECORD_LIMIT,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, not {scale}")
        if default_response_format not in ("url", "b64_json"):
            raise ValueError(
                f"default_response_format {default_response_format!r} is not 'url' or 'b64_json'"
            )
        # Re-entrant: a latency function may itself read the fake.
        self._lock = threading.RLock()
        self._api_key = api_key
        self._credits = credits
        self._banned_words = frozenset(w.lower() for w in banned_words)
        self._extra_models = frozenset(extra_models)
        self._latency: Latency = latency
        self._seed = seed
        self._default_format = default_response_format
        self._scale = scale
        self._secret = os.urandom(16)
        self._rates: dict[Fault, float] = {}
        self._records: collections.deque[RecordedRequest] = collections.deque(maxlen=record_limit)
        self._cdn_records: collections.deque[RecordedCdnRequest] = collections.deque(
            maxlen=record_limit
        )
        self._clear()

    def _clear(self) -> None:
        self._records.clear()
        self._cdn_records.clear()
        self._attempts: collections.Counter[str] = collections.Counter()
        self._scripts: dict[str | None, collections.deque[Fault]] = {}
        self._request_count = 0
        self._images_generated = 0
        self._in_flight = getattr(self, "_in_flight", 0)
        self._max_in_flight = self._in_flight
        self._fault_rng = random.Random(f"{self._seed}:faults" if self._seed is not None else None)
        self._latency_rng = random.Random(
            f"{self._seed}:latency" if self._seed is not None else None
        )

    def __repr__(self) -> str:
        return (
            f"<FakeLinkAI requests={self.request_count} in_flight={self.in_flight} "
            f"images_generated={self.images_generated}>"
        )

    # -- configuration -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API base URL of the in-process :meth:`transport` (``http://linkai.fake/v1``)."""
        return IN_PROCESS_BASE_URL

    @property
    def cdn_url(self) -> str:
        """The CDN origin of the in-process :meth:`transport` (``http://cdn.linkai.fake``)."""
        return IN_PROCESS_CDN_URL

    @property
    def api_key(self) -> str:
        """The accepted API key; assign to change it."""
        return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._api_key = value

    @property
    def credits(self) -> int | None:
        """Successes left before every request gets 406; ``None`` is unlimited."""
        return self._credits

    @credits.setter
    def credits(self, value: int | None) -> None:
        with self._lock:
            self._credits = value

    @property
    def banned_words(self) -> frozenset[str]:
        """Words (lower case) that get a prompt rejected with 409; assign to change them."""
        return self._banned_words

    @banned_words.setter
    def banned_words(self, value: Iterable[str]) -> None:
        self._banned_words = frozenset(w.lower() for w in value)

    @property
    def extra_models(self) -> frozenset[str]:
        """Model codes accepted besides the catalog's, with no table checks."""
        return self._extra_models

    @extra_models.setter
    def extra_models(self, value: Iterable[str]) -> None:
        self._extra_models = frozenset(value)

    @property
    def latency(self) -> Latency:
        """Seconds before each API answer, or a function of a seeded ``random.Random``."""
        return self._latency

    @latency.setter
    def latency(self, value: Latency) -> None:
        with self._lock:
            self._latency = value

    def fail(self, fault: Fault, *, prompt: str | None = None, times: int = 1) -> None:
        """Serve ``fault`` to the next ``times`` attempts (with ``prompt``, when given).

        Calls queue up in order: ``fail(Fault.drop(), prompt="p")`` then
        ``fail(Fault.status(503), prompt="p", times=2)`` drops the first
        attempt for "p", answers 503 to the next two, and lets the fourth
        through. A prompt's own queue goes before the any-prompt queue, which
        goes before :meth:`fail_randomly`.

        Args:
            fault: what to serve.
            prompt: only attempts with exactly this prompt; ``None`` for any request.
            times: how many attempts.
        """
        if times < 0:
            raise ValueError(f"times must not be negative, not {times}")
        with self._lock:
            self._scripts.setdefault(prompt, collections.deque()).extend([fault] * times)

    def fail_randomly(self, rate: float, fault: Fault | None = None) -> None:
        """Serve ``fault`` to a seeded-random share ``rate`` of requests.

        Several faults may each have a rate (their sum at most 1); setting a
        fault's rate again replaces it, and 0 removes it.

        Args:
            rate: the share of requests, 0 to 1.
            fault: what to serve; ``Fault.status(503)`` when ``None``.
        """
        fault = Fault.status(503) if fault is None else fault
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        with self._lock:
            self._rates.pop(fault, None)
            if sum(self._rates.values()) + rate > 1.0 + 1e-9:
                raise ValueError("the random fault rates add up to more than 1")
            if rate:
                self._rates[fault] = rate

    def reset(self) -> None:
        """Forget everything observed and every queued :meth:`fail`; keep the configuration.

        Records, attempts and counters start over, the random generators are
        reseeded, and images already generated stay downloadable.
        """
        with self._lock:
            self._clear()

    # -- observation ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The API requests received, oldest first (the last ``record_limit``)."""
        with self._lock:
            return list(self._records)

    @property
    def cdn_requests(self) -> list[RecordedCdnRequest]:
        """The CDN requests received, oldest first (the last ``record_limit``)."""
        with self._lock:
            return list(self._cdn_records)

    def attempts(self, prompt: str) -> int:
        """How many API requests carried exactly this prompt.

        Args:
            prompt: the prompt.

        Returns:
            The count, faulted and rejected attempts included.
        """
        with self._lock:
            return self._attempts[prompt]

    @property
    def request_count(self) -> int:
        """API requests received in total."""
        return self._request_count

    @property
    def images_generated(self) -> int:
        """Successful (paid-for) generations."""
        return self._images_generated

    @property
    def in_flight(self) -> int:
        """API requests received and not yet answered."""
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most API requests in flight at once since the start or :meth:`reset`."""
        return self._max_in_flight

    # -- front ends ----------------------------------------------------------

    def transport(self) -> FakeTransport:
        """An httpx transport that serves this fake in process, with no sockets.

        Use it with ``base_url=fake.base_url``; image URLs point at
        ``fake.cdn_url``, served by the same transport.

        Returns:
            A transport that is both ``httpx.AsyncBaseTransport`` and
            ``httpx.BaseTransport``.
        """
        from ._transport import FakeTransport

        return FakeTransport(self)

    def serve(self, *, host: str = "127.0.0.1", port: int = 0, cdn_port: int = 0) -> FakeServer:
        """A real HTTP server for this fake on loopback; use it as a context manager.

        ``with fake.serve() as server:`` starts the API and the CDN on two
        ports (ephemeral by default) in a background thread, and stops them
        on exit.

        Args:
            host: the address to listen on.
            port: the API port; 0 picks a free one.
            cdn_port: the CDN port; 0 picks a free one.

        Returns:
            The server, not yet started (``with`` or ``start()`` starts it).
        """
        from ._server import FakeServer

        return FakeServer(self, host=host, port=port, cdn_port=cdn_port)

    # -- the engine (called by the front ends) --------------------------------

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, *, cdn_url: str
    ) -> Reply:
        """Decide the answer to one API request and record it.

        Every call must be followed by one :meth:`_finish`, when the answer
        has been sent or abandoned.

        Args:
            method: the HTTP method.
            target: the request target (path and query).
            headers: the headers, names lower-cased.
            body: the request body.
            cdn_url: the CDN origin image URLs are to point at.

        Returns:
            The reply.
        """
        request_id = f"req-{os.urandom(8).hex()}"
        path = target.split("?", 1)[0]
        try:
            parsed: object = json.loads(body) if body else _NOT_JSON
        except (ValueError, UnicodeDecodeError, RecursionError):
            parsed = _NOT_JSON
        fields = parsed if isinstance(parsed, dict) else {}
        prompt = fields.get("prompt")
        prompt = prompt if isinstance(prompt, str) else None
        model = fields.get("model")
        raw_images = fields.get("images")
        images = (
            tuple(inspect_image(item) for item in raw_images)
            if isinstance(raw_images, list)
            else ()
        )
        routed = path == GENERATIONS_PATH and method == "POST"

        with self._lock:
            self._request_count += 1
            if prompt is not None:
                self._attempts[prompt] += 1
            fault = self._next_fault(prompt) if routed else None
            # Last before counting it in flight: a latency function may raise.
            delay = self._next_delay()
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

        if not routed:
            if path == GENERATIONS_PATH:
                reply = self._error(405, f"method {method} is not allowed; use POST", request_id)
            else:
                reply = self._error(404, f"no such endpoint: {path}", request_id)
        elif fault is not None:
            reply = self._fault_reply(fault, request_id, delay)
        else:
            outcome = self._check(headers, parsed, images)
            if isinstance(outcome, _Rejection):
                reply = self._error(outcome.status, outcome.message, request_id)
            else:
                reply = self._success(outcome, request_id, cdn_url)
        if fault is None and delay:
            reply = Reply(reply.status, reply.headers, reply.body, delay)

        record = RecordedRequest(
            request_id=request_id,
            method=method,
            path=target,
            headers=headers,
            body=None if parsed is _NOT_JSON else parsed,
            prompt=prompt,
            model=model if isinstance(model, str) else None,
            images=images,
            status=reply.status if reply.respond else None,
            fault=fault,
            received_at=time.time(),
        )
        with self._lock:
            self._records.append(record)
        return reply

    def _finish(self) -> None:
        """Mark a request begun by :meth:`_handle` as over (answered, dropped or abandoned)."""
        with self._lock:
            self._in_flight -= 1

    def _handle_cdn(self, method: str, target: str, headers: Mapping[str, str]) -> Reply:
        """Answer one request to the CDN origin and record it.

        Args:
            method: the HTTP method.
            target: the request target.
            headers: the headers, names lower-cased.

        Returns:
            The reply: the PNG, 404 for an unknown path, 405 for a method
            other than GET and HEAD.
        """
        image = self._decode_image_path(target.split("?", 1)[0])
        if method not in ("GET", "HEAD"):
            reply = Reply(405, (("content-type", "text/plain"), ("allow", "GET, HEAD")), b"")
        elif image is None:
            reply = Reply(404, (("content-type", "text/plain"),), b"not found\n")
        else:
            reply = Reply(
                200,
                (("content-type", "image/png"), ("cache-control", "public, max-age=31536000")),
                make_png(*image),
                head=method == "HEAD",
            )
        record = RecordedCdnRequest(
            method=method,
            path=target,
            headers=headers,
            status=reply.status,
            received_at=time.time(),
        )
        with self._lock:
            self._cdn_records.append(record)
        return reply

    # -- internals -----------------------------------------------------------

    def _next_fault(self, prompt: str | None) -> Fault | None:
        for key in (prompt, None) if prompt is not None else (None,):
            queue = self._scripts.get(key)
            if queue:
                fault = queue.popleft()
                if not queue:
                    del self._scripts[key]
                return fault
        if self._rates:
            draw = self._fault_rng.random()
            for fault, rate in self._rates.items():
                if draw < rate:
                    return fault
                draw -= rate
        return None

    def _next_delay(self) -> float:
        latency = self._latency
        value = latency(self._latency_rng) if callable(latency) else latency
        return max(0.0, float(value))

    def _error(self, status: int, message: str, request_id: str) -> Reply:
        return Reply(status, (_JSON, ("x-request-id", request_id)), error_body(status, message))

    def _fault_reply(self, fault: Fault, request_id: str, delay: float) -> Reply:
        code = fault.status_code or 503
        if fault.kind == "drop":
            return Reply(0, (), b"", delay=delay, respond=False)
        if fault.kind == "hang":
            return Reply(0, (), b"", delay=delay + max(0.0, fault.seconds), respond=False)
        if fault.kind == "malformed_json":
            return Reply(200, (_JSON, ("x-request-id", request_id)), _MALFORMED_BODY, delay=delay)
        if fault.kind == "html_error":
            page = _HTML_PAGE.format(code=code, reason=_REASONS.get(code, "Error"))
            return Reply(code, (("content-type", "text/html"),), page.encode(), delay=delay)
        if fault.kind == "empty_error":
            return Reply(code, (("x-request-id", request_id),), b"", delay=delay)
        message = fault.message or _DEFAULT_MESSAGES.get(code, f"injected error {code}")
        headers: tuple[tuple[str, str], ...] = (_JSON, ("x-request-id", request_id))
        if fault.retry_after is not None:
            headers += (("retry-after", _format_retry_after(fault.retry_after)),)
        return Reply(code, headers, error_body(code, message), delay=delay)

    def _check(
        self, headers: Mapping[str, str], parsed: object, images: tuple[ReferenceImage, ...]
    ) -> _Job | _Rejection:
        """The platform's rules, in its order: 401, 400 (body), 402, 400 (fields), 409."""
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self._api_key}":
            scheme, _, key = auth.strip().partition(" ")
            if not auth:
                return _Rejection(401, "missing API key; send 'Authorization: Bearer <API key>'")
            if scheme.lower() != "bearer" or key.strip() != self._api_key:
                return _Rejection(401, "invalid API key")
        if not isinstance(parsed, dict):
            return _Rejection(400, "the request body must be a JSON object")
        model = parsed.get("model")
        if not isinstance(model, str) or not model.strip():
            return _Rejection(400, "model is required: a model code such as 'gpt-image-2'")
        prompt = parsed.get("prompt")
        if not isinstance(prompt, str):
            return _Rejection(400, "prompt is required and must be a string")
        if not prompt.strip():
            return _Rejection(400, "prompt must not be empty")
        spec = CATALOG.get(model)
        if spec is None and model not in self._extra_models:
            return _Rejection(402, f"model does not exist or the account may not use it: {model}")

        raw_images = parsed.get("images")
        if raw_images is not None and not isinstance(raw_images, list):
            return _Rejection(400, "images must be a list of strings")
        if spec is not None and len(images) > spec.max_images:
            return _Rejection(
                400,
                f"{len(images)} reference images given; {model} takes at most {spec.max_images}",
            )
        for index, image in enumerate(images):
            if image.error is not None:
                return _Rejection(400, f"images[{index}] {image.error}")

        job = self._job(spec, parsed, prompt)
        if isinstance(job, _Rejection):
            return job
        lowered = prompt.lower()
        if any(word in lowered for word in self._banned_words):
            return _Rejection(409, "content moderation rejected the prompt")
        return job

    def _job(
        self, spec: ModelSpec | None, fields: Mapping[str, object], prompt: str
    ) -> _Job | _Rejection:
        size = fields.get("size")
        ratio = fields.get("aspect_ratio")
        if spec is None:
            # An unknown model's fields pass unchecked.
            size = size if isinstance(size, str) and size in SIZE_TIERS else "1K"
            ratio = ratio if isinstance(ratio, str) and ratio in ALL_ASPECT_RATIOS else "1:1"
        else:
            tables = (
                ("size", spec.sizes),
                ("aspect_ratio", spec.aspect_ratios),
                ("quality", spec.qualities),
            )
            for name, offered in tables:
                value = fields.get(name)
                # A field the model does not have at all is ignored, as the
                # platform says (size and quality for Nano Banana).
                if value is None or not offered:
                    continue
                if not isinstance(value, str):
                    return _Rejection(400, f"{name} must be a string, not {value!r}")
                if value not in offered:
                    return _Rejection(
                        400,
                        f"{name} {value!r} is not offered by {spec.code}; "
                        f"choose one of {_choices(offered)}",
                    )
            if size is None or not spec.sizes:
                size = spec.default_size or "1K"
            if ratio is None or not spec.aspect_ratios:
                ratio = spec.default_aspect_ratio or "1:1"
        response_format = fields.get("response_format")
        if response_format is None:
            response_format = self._default_format
        if response_format not in ("url", "b64_json"):
            return _Rejection(
                400, f"response_format {response_format!r} is not supported; use 'url'"
            )
        width, height = _scaled_pixels(str(size), str(ratio), self._scale)
        return _Job(
            width=width,
            height=height,
            rgb=_colour(prompt),
            response_format=str(response_format),
        )

    def _success(self, job: _Job, request_id: str, cdn_url: str) -> Reply:
        with self._lock:
            if self._credits is not None:
                if self._credits <= 0:
                    return self._error(406, "not enough account credits", request_id)
                self._credits -= 1
            self._images_generated += 1
        # Formatted by hand: this is the hot path of every benchmark, and
        # neither a URL we build nor base64 needs JSON escaping.
        if job.response_format == "b64_json":
            item = f'"b64_json":"{make_png_b64(job.width, job.height, job.rgb)}"'
        else:
            item = f'"url":"{cdn_url}{CDN_PATH_PREFIX}{self._image_token(job)}.png"'
        body = f'{{"created":{int(time.time())},"data":[{{{item}}}]}}'
        return Reply(200, (_JSON, ("x-request-id", request_id)), body.encode())

    # A generated image's URL carries its size and colour, masked and signed,
    # so the CDN needs no table of every image ever made (benchmarks make
    # millions) and an invented path still gets 404.
    def _image_token(self, job: _Job) -> str:
        nonce = os.urandom(5)
        plain = struct.pack(">HHBBB", job.width, job.height, *job.rgb)
        mac = hashlib.blake2b(nonce + plain, key=self._secret, digest_size=4).digest()
        hex_ = (nonce + _xor(plain, self._mask(nonce)) + mac).hex()
        return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"

    def _mask(self, nonce: bytes) -> bytes:
        return hashlib.blake2b(nonce, key=self._secret, digest_size=7, person=b"mask").digest()

    def _decode_image_path(self, path: str) -> tuple[int, int, tuple[int, int, int]] | None:
        if not (path.startswith(CDN_PATH_PREFIX) and path.endswith(".png")):
            return None
        token = path[len(CDN_PATH_PREFIX) : -len(".png")].replace("-", "")
        try:
            raw = bytes.fromhex(token)
        except ValueError:
            return None
        if len(raw) != 16:
            return None
        nonce, masked, mac = raw[:5], raw[5:12], raw[12:]
        plain = _xor(masked, self._mask(nonce))
        expected = hashlib.blake2b(nonce + plain, key=self._secret, digest_size=4).digest()
        if not hmac.compare_digest(expected, mac):
            return None
        width, height, r, g, b = struct.unpack(">HHBBB", plain)
        return width, height, (r, g, b)
