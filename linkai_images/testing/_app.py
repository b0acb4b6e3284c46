"""The fake platform's state and its request handling, with no I/O.

:class:`FakeLinkAI` holds the configuration and everything observed. Both
front ends, the in-process transport (``_transport.py``) and the loopback
server (``_server.py``), hand every request to :meth:`FakeLinkAI._handle` (the
API origin) or :meth:`FakeLinkAI._handle_cdn` (the CDN origin) and get back a
:class:`Reply`: what to answer, after how long, or to close the connection
without answering. The front end does the waiting and calls
:meth:`FakeLinkAI._finish` when the request is over, which keeps the in-flight
count true.

What a request gets is decided elsewhere: the platform's rules in
``_rules.py``, injected faults in ``_faults.py``, image URLs and files in
``_cdn.py``; what is kept of it is ``_records.py``'s.
"""

from __future__ import annotations

import collections
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypeAlias

import attrs

from ._cdn import Cdn
from ._faults import Fault, FaultSchedule, fault_reply
from ._limits import Limits, retry_after_header
from ._png import make_png_b64
from ._records import RecordedCdnRequest, RecordedRequest, inspect_image
from ._reply import IN_PROCESS_BASE_URL, IN_PROCESS_CDN_URL, JSON_HEADER, Reply, error_reply
from ._rules import Job, Rejection, Rules
from ._server import FakeServer
from ._transport import FakeTransport

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_BANNED_WORDS",
    "DEFAULT_RECORD_LIMIT",
    "DEFAULT_SCALE",
    "GENERATIONS_PATH",
    "IN_PROCESS_BASE_URL",
    "IN_PROCESS_CDN_URL",
    "FakeLinkAI",
    "Latency",
]

#: The API key a fake accepts unless told otherwise.
DEFAULT_API_KEY = "sk-linkai-fake-key"
#: Words that make content moderation reject a prompt (409), matched case-insensitively.
DEFAULT_BANNED_WORDS: frozenset[str] = frozenset({"forbidden"})
#: Served images are the platform's pixel size divided by this, to stay small.
DEFAULT_SCALE = 16
#: How many recent requests (and CDN requests) are kept for inspection.
DEFAULT_RECORD_LIMIT = 10_000
#: The one API path.
GENERATIONS_PATH = "/v1/images/generations"

#: Seconds before an answer: a number, or a function of a seeded ``random.Random``.
Latency: TypeAlias = float | Callable[[random.Random], float]

_NOT_JSON = object()


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
        rate_limit: requests the account may start, ``"N/second"``,
            ``"N/minute"`` or ``"N/hour"``; faster ones get 429 with
            ``Retry-After`` (a GCRA allowing one request an interval early).
        capacity: requests the account may have generating at once; more
            get 429 with ``Retry-After`` (until the first one finishes).

    Raises:
        ValueError: a ``scale`` below 1, an unknown ``default_response_format``,
            a bad ``rate_limit`` or a ``capacity`` below 1.
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
        rate_limit: str | None = None,
        capacity: int | None = None,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, not {scale}")
        if default_response_format not in ("url", "b64_json"):
            raise ValueError(
                f"default_response_format {default_response_format!r} is not 'url' or 'b64_json'"
            )
        # Re-entrant: a latency function may itself read the fake.
        self._lock = threading.RLock()
        self._rules = Rules(
            api_key=api_key,
            banned_words=frozenset(w.lower() for w in banned_words),
            extra_models=frozenset(extra_models),
            default_response_format=default_response_format,
            scale=scale,
        )
        self._limits = Limits(rate_limit, capacity)
        self._record_limit = record_limit
        self._credits = credits
        self._latency: Latency = latency
        self._seed = seed
        self._faults = FaultSchedule(seed)
        self._cdn = Cdn()
        self._records: collections.deque[RecordedRequest] = collections.deque(maxlen=record_limit)
        self._cdn_records: collections.deque[RecordedCdnRequest] = collections.deque(
            maxlen=record_limit
        )
        self._clear()

    def _clear(self) -> None:
        self._records.clear()
        self._cdn_records.clear()
        self._attempts: collections.Counter[str] = collections.Counter()
        self._faults.clear()
        self._limits.clear()
        self._starts: dict[str | None, collections.deque[float]] = {}
        self._request_count = 0
        self._images_generated = 0
        self._in_flight = getattr(self, "_in_flight", 0)
        self._max_in_flight = self._in_flight
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
        return self._rules.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        with self._lock:
            self._rules = attrs.evolve(self._rules, api_key=value)

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
        return self._rules.banned_words

    @banned_words.setter
    def banned_words(self, value: Iterable[str]) -> None:
        words = frozenset(w.lower() for w in value)
        with self._lock:
            self._rules = attrs.evolve(self._rules, banned_words=words)

    @property
    def extra_models(self) -> frozenset[str]:
        """Model codes accepted besides the catalog's, with no table checks."""
        return self._rules.extra_models

    @extra_models.setter
    def extra_models(self, value: Iterable[str]) -> None:
        models = frozenset(value)
        with self._lock:
            self._rules = attrs.evolve(self._rules, extra_models=models)

    @property
    def rate_limit(self) -> str | None:
        """The account's request rate (``"60/minute"``), or ``None``: no limit."""
        rate = self._limits.rate
        return rate.text if rate is not None else None

    @property
    def capacity(self) -> int | None:
        """Requests the account may have generating at once, or ``None``: no limit."""
        return self._limits.capacity

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
        with self._lock:
            self._faults.queue(fault, prompt=prompt, times=times)

    def fail_randomly(self, rate: float, fault: Fault | None = None) -> None:
        """Serve ``fault`` to a seeded-random share ``rate`` of requests.

        Several faults may each have a rate (their sum at most 1); setting a
        fault's rate again replaces it, and 0 removes it.

        Args:
            rate: the share of requests, 0 to 1.
            fault: what to serve; ``Fault.status(503)`` when ``None``.
        """
        fault = Fault.status(503) if fault is None else fault
        with self._lock:
            self._faults.set_rate(fault, rate)

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

    def starts(self, model: str | None = None) -> list[float]:
        """When API requests arrived (``time.monotonic()``), oldest first, refused ones included.

        Args:
            model: only requests naming this model; ``None`` for all.

        Returns:
            The arrival times of the last ``record_limit`` requests (of ``model``).
        """
        with self._lock:
            if model is not None:
                return list(self._starts.get(model, ()))
            return sorted(t for times in self._starts.values() for t in times)

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
        return FakeTransport(self)

    def serve(
        self, *, host: str = "127.0.0.1", port: int = 0, cdn_port: int = 0
    ) -> FakeServer[FakeLinkAI]:
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
        model = model if isinstance(model, str) else None
        refusal = None

        with self._lock:
            arrived = time.monotonic()
            self._request_count += 1
            if prompt is not None:
                self._attempts[prompt] += 1
            fault = self._faults.next(prompt) if routed else None
            # Last before counting it in flight: a latency function may raise.
            delay = self._next_delay()
            if routed:
                starts = self._starts.get(model)
                if starts is None:
                    starts = self._starts[model] = collections.deque(maxlen=self._record_limit)
                starts.append(arrived)
                if fault is None and self._limits.active:
                    refusal = self._limits.admit(arrived, delay)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

        if not routed:
            if path == GENERATIONS_PATH:
                reply = error_reply(405, f"method {method} is not allowed; use POST", request_id)
            else:
                reply = error_reply(404, f"no such endpoint: {path}", request_id)
        elif fault is not None and fault.generated:
            # Generated and billed as any request would be, then the answer is lost.
            outcome = self._rules.check(headers, parsed, images)
            if not isinstance(outcome, Rejection):
                self._success(outcome, request_id, cdn_url)
            reply = fault_reply(fault, request_id, delay)
        elif fault is not None:
            reply = fault_reply(fault, request_id, delay)
        elif refusal is not None:
            reply = error_reply(429, refusal.message, request_id)
            retry_after = ("retry-after", retry_after_header(refusal.retry_after))
            reply = Reply(429, (*reply.headers, retry_after), reply.body)
        else:
            outcome = self._rules.check(headers, parsed, images)
            if isinstance(outcome, Rejection):
                reply = error_reply(outcome.status, outcome.message, request_id)
            else:
                reply = self._success(outcome, request_id, cdn_url)
        if fault is None and refusal is None and delay:
            reply = Reply(reply.status, reply.headers, reply.body, delay)

        record = RecordedRequest(
            request_id=request_id,
            method=method,
            path=target,
            headers=headers,
            body=None if parsed is _NOT_JSON else parsed,
            prompt=prompt,
            model=model,
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
        reply = self._cdn.answer(method, target)
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

    def _next_delay(self) -> float:
        latency = self._latency
        value = latency(self._latency_rng) if callable(latency) else latency
        return max(0.0, float(value))

    def _success(self, job: Job, request_id: str, cdn_url: str) -> Reply:
        with self._lock:
            if self._credits is not None:
                if self._credits <= 0:
                    return error_reply(406, "not enough account credits", request_id)
                self._credits -= 1
            self._images_generated += 1
        # Formatted by hand: this is the hot path of every benchmark, and
        # neither a URL we build nor base64 needs JSON escaping.
        if job.response_format == "b64_json":
            item = f'"b64_json":"{make_png_b64(job.width, job.height, job.rgb)}"'
        else:
            item = f'"url":"{cdn_url}{self._cdn.image_path(job.width, job.height, job.rgb)}"'
        body = f'{{"created":{int(time.time())},"data":[{{{item}}}]}}'
        return Reply(200, (JSON_HEADER, ("x-request-id", request_id)), body.encode())
