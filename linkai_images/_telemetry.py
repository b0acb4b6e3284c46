"""OpenTelemetry spans and metrics of a client, and next to nothing when unused.

What is recorded (the GenAI semantic conventions where they say something,
LinkAI's own attributes under ``linkai.``):

- a span ``generate_content {model}`` per ``generate`` call, retries included;
- a child span ``POST`` per HTTP attempt, with the wait for a slot before it;
- a span event ``retry`` on the call's span before each retry: its cause and wait;
- a span ``generate_many`` / ``as_completed`` per batch, with counts by outcome;
- the metrics of ``_Instruments``.

Never recorded: the API key, image data (references or results), and, unless
the client was made with ``capture_prompts=True``, the prompt and error
messages (a server's message may quote the prompt).

Only ``opentelemetry-api`` is imported, and only lazily: with it missing, or
with no tracer or meter provider set, a client's ``Telemetry`` stays off and
the client takes its plain path (one comparison per call).
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

import anyio
import httpx

from ._exceptions import (
    APIStatusError,
    BatchAbortedError,
    CostLimitError,
    RequestValidationError,
)
from ._models import BatchItem, ImageRequest, ImageResponse
from ._retry import RetryBudget, RetryEvent, RetryHook
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
        UpDownCounter,
    )
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["BatchTrace", "CallTrace", "Telemetry", "error_type"]

T = TypeVar("T")

#: Seconds between two looks at the global providers while a client's telemetry is off.
RECHECK_INTERVAL = 1.0

_SCOPE = "linkai_images"
_PROVIDER = "linkai"

#: Call durations run from a second to minutes (4K images): buckets up to about 11 minutes.
_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(17))
_WAIT_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: its class, as users import it."""
    cls = type(exc)
    module = cls.__module__
    if module.startswith("linkai_images"):
        module = "linkai_images"  # every error is public at the top level
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _attempt_error_type(exc: BaseException) -> str:
    # The HTTP conventions: the status code when there was an answer.
    return str(exc.status_code) if isinstance(exc, APIStatusError) else error_type(exc)


def _proxy_or_noop(provider: object) -> bool:
    """Whether ``provider`` is the API's default: nothing configured, nothing recorded."""
    from opentelemetry import metrics, trace

    # The API's placeholder before a meter provider is set has no public name.
    return (
        isinstance(
            provider,
            (trace.ProxyTracerProvider, trace.NoOpTracerProvider, metrics.NoOpMeterProvider),
        )
        or type(provider).__name__ == "_ProxyMeterProvider"
    )


class _Instruments:
    """The metrics of every client recording to one meter provider."""

    def __init__(self, meter: Meter) -> None:
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of generate calls, retries and waits included.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.attempts: Counter = meter.create_counter(
            "linkai.client.attempts",
            unit="{attempt}",
            description="HTTP attempts of generate calls, by outcome (error.type on failure).",
        )
        self.active: UpDownCounter = meter.create_up_down_counter(
            "linkai.client.active_requests",
            unit="{request}",
            description="HTTP attempts in flight.",
        )
        self.queued: UpDownCounter = meter.create_up_down_counter(
            "linkai.client.queued_requests",
            unit="{request}",
            description="Attempts waiting for a slot under the client's max_concurrency.",
        )
        self.wait: Histogram = meter.create_histogram(
            "linkai.client.limiter.wait",
            unit="s",
            description="Time an attempt waited for a slot under the client's max_concurrency.",
            explicit_bucket_boundaries_advisory=list(_WAIT_BUCKETS),
        )
        self.paced: Histogram = meter.create_histogram(
            "linkai.client.pacing.wait",
            unit="s",
            description="Time an attempt waited for its turn under the client's rate limits.",
            explicit_bucket_boundaries_advisory=list(_WAIT_BUCKETS),
        )
        self.budgets: weakref.WeakSet[Telemetry] = weakref.WeakSet()
        meter.create_observable_gauge(
            "linkai.client.retry_budget.available",
            callbacks=[self._observe_budgets],
            unit="{retry}",
            description="Retries each client's retry budget allows now.",
        )

    def _observe_budgets(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        for telemetry in list(self.budgets):
            budget = telemetry.budget
            if budget is not None:
                yield Observation(budget.available, telemetry.metric_attributes)


# One set of instruments per meter provider: instruments are registered once per
# name, and an observable gauge's callbacks are fixed when it is created.
_GLOBAL = object()
_instruments: weakref.WeakKeyDictionary[object, _Instruments] = weakref.WeakKeyDictionary()
_global_instruments: list[_Instruments] = []


def _instruments_for(provider: MeterProvider | None) -> _Instruments:
    if provider is None:
        if not _global_instruments:
            from opentelemetry import metrics

            # The API's proxy meter: it starts recording once a provider is set.
            _global_instruments.append(_Instruments(metrics.get_meter(_SCOPE, __version__)))
        return _global_instruments[0]
    found = _instruments.get(provider)
    if found is None:
        found = _instruments[provider] = _Instruments(provider.get_meter(_SCOPE, __version__))
    return found


class Telemetry:
    """The telemetry of one client: off, or its tracer, instruments and attributes.

    Whether it is on is decided when the client is made and not undone:
    ``opentelemetry-api`` is installed and a tracer or meter provider is set
    (passed to the client, or set globally). While it is off, the client looks
    at the global providers again at most once a second (``next_check``), so a
    provider set after the client was made is picked up by the calls that
    start a second later at the latest.

    Args:
        base_url: the API's base URL (``server.address``, ``server.port``).
        endpoint: the URL of generation calls (``url.full``, credentials removed).
        capture_prompts: put prompts and error messages on spans.
        tracer_provider: record spans there instead of the global provider.
        meter_provider: record metrics there instead of the global provider.
        budget: the client's retry budget, observed by a gauge.
    """

    def __init__(
        self,
        *,
        base_url: httpx.URL,
        endpoint: httpx.URL,
        capture_prompts: bool = False,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        self.capture_prompts = capture_prompts
        self.budget = budget
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        port = base_url.port or (443 if base_url.scheme == "https" else 80)
        self.metric_attributes: dict[str, str | int] = {"server.address": base_url.host}
        self.base_attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.output.type": "image",
            "gen_ai.provider.name": _PROVIDER,
            "server.address": base_url.host,
            "server.port": port,
        }
        self.attempt_attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": base_url.host,
            "server.port": port,
            "url.full": str(endpoint.copy_with(username=None, password=None, query=None)),
        }
        self.tracer: Tracer | None = None
        self.instruments: _Instruments | None = None
        #: ``time.monotonic()`` from which ``enabled`` must be asked: ``-inf`` once
        #: on, ``inf`` when the API is not installed, else the next look.
        self.next_check = -math.inf
        try:
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            self.next_check = math.inf
            return
        self.enabled(time.monotonic())

    def enabled(self, now: float) -> bool:
        """Whether to record the call starting at ``now`` (switching on for good if so)."""
        if self.tracer is not None:
            return True
        if now < self.next_check:
            return False
        from opentelemetry import metrics, trace

        tracers = self._tracer_provider or trace.get_tracer_provider()
        meters = self._meter_provider or metrics.get_meter_provider()
        if _proxy_or_noop(tracers) and _proxy_or_noop(meters):
            self.next_check = now + RECHECK_INTERVAL
            return False
        # Ask the API, not the provider found, when none was passed: its proxies
        # follow a provider set later (a tracer provider may be set without a
        # meter provider, and the other way round).
        self.tracer = (
            trace.get_tracer(_SCOPE, __version__)
            if self._tracer_provider is None
            else self._tracer_provider.get_tracer(_SCOPE, __version__)
        )
        self.instruments = _instruments_for(self._meter_provider)
        self.instruments.budgets.add(self)
        self.next_check = -math.inf
        return True

    def call(self, request: ImageRequest) -> CallTrace:
        """The span and metrics of one ``generate`` call (call only when ``enabled``)."""
        return CallTrace(self, request)

    def batch(self, operation: str, *, concurrency: int, size: int | None) -> BatchTrace | None:
        """The span of a batch, or ``None`` when telemetry is off."""
        if not self.enabled(time.monotonic()):
            return None
        return BatchTrace(self, operation, concurrency=concurrency, size=size)


def _request_attributes(request: ImageRequest) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"linkai.image.reference_count": len(request.images)}
    if request.model is not None:
        attributes["gen_ai.request.model"] = request.model
    if request.size is not None:
        attributes["linkai.image.size"] = request.size
    if request.aspect_ratio is not None:
        attributes["linkai.image.aspect_ratio"] = request.aspect_ratio
    if request.quality is not None:
        attributes["linkai.image.quality"] = request.quality
    return attributes


def _input_messages(prompt: str) -> str:
    # gen_ai.input.messages: the conventions' JSON form of the chat-like input.
    message = {"role": "user", "parts": [{"type": "text", "content": prompt}]}
    return json.dumps([message], ensure_ascii=False)


class CallTrace:
    """The span of one ``generate`` call, its attempts' spans, and its metrics.

    ``begin`` makes the span current (so spans opened underneath nest in
    it); ``end`` ends it and records the call's duration, with
    ``error.type`` when the call raised. (Not a context manager: the client
    calls both inline, so that its path without telemetry has no extra frame.)
    """

    def __init__(self, telemetry: Telemetry, request: ImageRequest) -> None:
        from opentelemetry import trace

        assert telemetry.tracer is not None
        assert telemetry.instruments is not None
        self._telemetry = telemetry
        self._instruments = telemetry.instruments
        self._started = time.monotonic()
        self.attempts = 0
        attributes = {**telemetry.base_attributes, **_request_attributes(request)}
        if telemetry.capture_prompts:
            attributes["gen_ai.input.messages"] = _input_messages(request.prompt)
        self._metric_attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": _PROVIDER,
            **telemetry.metric_attributes,
        }
        # The client's own metrics carry fewer attributes: each one is hashed per update.
        self._client_attributes = dict(telemetry.metric_attributes)
        if request.model is not None:
            self._metric_attributes["gen_ai.request.model"] = request.model
            self._client_attributes["gen_ai.request.model"] = request.model
        name = "generate_content" if request.model is None else f"generate_content {request.model}"
        self._span: Span = telemetry.tracer.start_span(
            name, kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        self._scope = trace.use_span(
            self._span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        )

    def begin(self) -> None:
        """Make the call's span current (in this task, until ``end``)."""
        self._scope.__enter__()

    def end(self, exc: BaseException | None) -> None:
        """End the span and record the duration; ``exc`` is what the call raised."""
        span, metric_attributes = self._span, self._metric_attributes
        span.set_attribute("linkai.attempts", self.attempts)
        if exc is not None:
            kind = error_type(exc)
            _fail(span, exc, kind, self._telemetry.capture_prompts)
            metric_attributes = {**metric_attributes, "error.type": kind}
        self._instruments.duration.record(time.monotonic() - self._started, metric_attributes)
        self._scope.__exit__(
            None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__
        )

    def succeeded(self, response: ImageResponse) -> None:
        """Note what the answer told (never its images)."""
        self._span.set_attribute("linkai.image.count", len(response.data))
        if response.request_id is not None:
            self._span.set_attribute("linkai.request_id", response.request_id)

    def retry_hook(self, then: RetryHook | None) -> RetryHook:
        """A retry hook that adds the ``retry`` event to the span, then calls ``then``."""
        span = self._span

        def on_retry(event: RetryEvent) -> None:
            attributes: dict[str, str | int | float] = {
                "linkai.retry.attempt": event.attempt,
                "linkai.retry.wait": event.wait,
                "error.type": error_type(event.cause),
            }
            cause = event.cause
            if isinstance(cause, APIStatusError):
                attributes["http.response.status_code"] = cause.status_code
                if cause.retry_after is not None:
                    attributes["linkai.retry.retry_after"] = cause.retry_after
            span.add_event("retry", attributes)
            if then is not None:
                then(event)

        return on_retry

    def paced(self, waited: float) -> None:
        """Note the seconds an attempt waited for the pacer (the client's rate limits)."""
        self._instruments.paced.record(waited, self._client_attributes)
        if waited > 0:
            self._span.add_event("paced", {"linkai.pacing.wait": waited})

    async def attempt(self, limiter: anyio.Semaphore, send: Callable[[], Awaitable[T]]) -> T:
        """Take a slot of ``limiter``, then run ``send`` (one HTTP attempt) in its own span."""
        from opentelemetry import trace

        telemetry, instruments = self._telemetry, self._instruments
        assert telemetry.tracer is not None
        self.attempts += 1
        metric_attributes = self._client_attributes
        waited = 0.0
        if limiter.value:  # a free slot, taken at once: nothing queues
            await limiter.acquire()
        else:
            queued_at = time.monotonic()
            instruments.queued.add(1, metric_attributes)
            try:
                await limiter.acquire()
            finally:
                instruments.queued.add(-1, metric_attributes)
            waited = time.monotonic() - queued_at
        try:
            instruments.wait.record(waited, metric_attributes)
            attributes = dict(telemetry.attempt_attributes)
            if self.attempts > 1:
                attributes["http.request.resend_count"] = self.attempts - 1
            with telemetry.tracer.start_as_current_span(
                "POST",
                kind=trace.SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                instruments.active.add(1, metric_attributes)
                try:
                    result = await send()
                except BaseException as exc:
                    kind = _attempt_error_type(exc)
                    if isinstance(exc, APIStatusError):
                        span.set_attribute("http.response.status_code", exc.status_code)
                    _fail(span, exc, kind, telemetry.capture_prompts)
                    instruments.attempts.add(1, {**metric_attributes, "error.type": kind})
                    raise
                finally:
                    instruments.active.add(-1, metric_attributes)
                instruments.attempts.add(1, metric_attributes)
                return result
        finally:
            limiter.release()


def _fail(span: Span, exc: BaseException, kind: str, with_message: bool) -> None:
    from opentelemetry.trace import StatusCode

    span.set_attribute("error.type", kind)
    if with_message:
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, str(exc))
    else:
        span.set_status(StatusCode.ERROR, kind)


class BatchTrace:
    """The span of one batch, with its requests' outcomes counted."""

    def __init__(
        self, telemetry: Telemetry, operation: str, *, concurrency: int, size: int | None
    ) -> None:
        from opentelemetry import trace

        assert telemetry.tracer is not None
        attributes: dict[str, str | int] = {
            "gen_ai.provider.name": _PROVIDER,
            "server.address": telemetry.metric_attributes["server.address"],
            "linkai.batch.concurrency": concurrency,
        }
        if size is not None:
            attributes["linkai.batch.size"] = size
        self.span: Span = telemetry.tracer.start_span(
            operation, kind=trace.SpanKind.INTERNAL, attributes=attributes
        )
        self.counts = {"succeeded": 0, "failed": 0, "invalid": 0, "aborted": 0, "over_budget": 0}
        self.restored = 0
        self._ended = False

    def current(self) -> AbstractContextManager[Span]:
        """Make the batch's span current, so the calls it starts nest in it."""
        from opentelemetry import trace

        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def count(self, item: BatchItem) -> None:
        """Count a settled request by its outcome."""
        error = item.error
        if error is None:
            outcome = "succeeded"
        elif isinstance(error, BatchAbortedError):
            outcome = "aborted"
        elif isinstance(error, RequestValidationError):
            outcome = "invalid"
        elif isinstance(error, CostLimitError):
            outcome = "over_budget"
        else:
            outcome = "failed"
        self.counts[outcome] += 1

    def end(self, exc: BaseException | None = None) -> None:
        """Set the counts and end the span (once; later calls do nothing)."""
        if self._ended:
            return
        self._ended = True
        span = self.span
        for outcome, count in self.counts.items():
            span.set_attribute(f"linkai.batch.{outcome}", count)
        span.set_attribute("linkai.batch.from_checkpoint", self.restored)
        if exc is not None:
            _fail(span, exc, error_type(exc), with_message=False)
        span.end()
