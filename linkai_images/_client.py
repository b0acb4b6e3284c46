"""``AsyncImageClient``: one pool, a bound on requests in flight, generate()."""

from __future__ import annotations

import enum
import importlib
import math
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
import httpx

from ._config import (
    DEFAULT_LIMITER_PREFIX,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    PAUSE_STATUSES,
    USER_AGENT,
    mask_secret,
    resolve_api_key,
    resolve_base_url,
    resolve_limiter_url,
    to_timeout,
)
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    RequestValidationError,
)
from ._http.answer import BIG_ANSWER
from ._http.endpoint import Answer, Endpoint, GenerationResult, Sender, post_generation
from ._http.transport import AutoTransport, build_transport
from ._inputs.body import check_request, encode_body, encode_json
from ._inputs.cache import DEFAULT_IMAGE_CACHE_BYTES, ImageCache
from ._models import GeneratedImage, ImageRequest, ImageResponse, ImageStore
from ._retry import (
    RetryBudget,
    RetryEvent,
    RetryHook,
    RetryPolicy,
    call_with_retries,
    is_testing,
)
from ._telemetry import CallTrace, Telemetry

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._batch.engine import BatchIterator, CheckpointPath, RequestSource
    from ._batch.plan import BatchPlan
    from ._batch.prices import PriceArg
    from ._batch.progress import ProgressArg
    from ._http.transport import LeanPost
    from ._inputs.images import ImageInput
    from ._pacing import Pacer

__all__ = ["AsyncImageClient"]


#: The batch engine's module, imported off the event loop at the first batch.
_BATCH_ENGINE = "linkai_images._batch.engine"


def _import_batch_engine() -> None:
    importlib.import_module(_BATCH_ENGINE)
    importlib.import_module("linkai_images._inputs.images")  # the checks of image requests


class _Default(enum.Enum):
    TOKEN = enum.auto()


#: The default of ``retry_budget``: a fresh ``RetryBudget`` per client.
_NEW_BUDGET = _Default.TOKEN


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class AsyncImageClient:
    """The asynchronous LinkAI image client (asyncio and trio).

    One client holds one connection pool; share it between all the tasks of
    an application. It keeps at most ``max_concurrency`` requests in flight
    across all of them, so a large fan-out queues instead of failing.

    Args:
        api_key: the API key; default ``$LINKAI_API_KEY``. Never shown in a
            repr, a log line or an error.
        base_url: the API's base URL; default ``$LINKAI_BASE_URL``, else
            ``https://api.link-ai.tech/v1``.
        default_model: the model used when a call names none.
        timeout: float seconds for the answer of one attempt (connecting stays
            short), or an ``httpx.Timeout``. Generation takes tens of seconds,
            minutes at 4K: the default waits 10 minutes.
        deadline: optional total seconds for one call, retries and waits
            included; past it the call fails with ``APITimeoutError``.
        max_retries: retries after the first attempt (``N`` means at most
            ``N + 1`` attempts). Ignored when ``retry_policy`` is given.
        retry_policy: the full retry policy (``RetryPolicy``).
        retry_budget: the client-wide retry quota shared by all calls; ``None``
            turns it off. Default: a fresh ``RetryBudget()`` (retries up to 30%
            of the healthy answers of the last 10 s, plus 10 a second).
        on_retry: called with a ``RetryEvent`` before each retry.
        max_concurrency: requests in flight at once, across all tasks.
        rate_limit: request starts allowed across all tasks, written
            ``"N/second"``, ``"N/minute"`` or ``"N/hour"``; starts are spread
            evenly (one every ``period / N``), never in bursts.
        model_rate_limits: a rate per model code, e.g.
            ``{"gpt-image-2": "5/minute"}``, on top of ``rate_limit``.
        adaptive_concurrency: keep, per model, a concurrency limit that
            halves when the platform answers 429 or times out and grows back
            after successes, between 1 and ``max_concurrency``
            (see ``concurrency_limit``).
        limiter_url: a Redis URL (``redis://host:6379/0``) where the rate
            limits are kept, so that every process using the same URL and
            ``limiter_prefix`` shares them; default ``$LINKAI_LIMITER_URL``
            (used only when a rate limit is set). Needs the ``redis`` extra.
        limiter_prefix: the prefix of the limiter's Redis keys.
        limiter_fallback: when Redis cannot be reached, pace in this process
            alone (with a warning) instead of failing with ``LimiterError``.
        max_image_bytes: the size cap of one local reference image.
        image_cache_bytes: encoded reference images kept for reuse while no
            request uses them, in bytes (least recently used dropped first).
            Each distinct image is read and encoded once while it stays
            cached or in use; ``0`` keeps an image only while requests use it.
        http_client: an ``httpx.AsyncClient`` to use instead of the client's
            own; the caller keeps ownership (it is not closed by ``aclose``).
        transport: an httpx transport for the client's own pool (e.g. the
            in-process fake of ``linkai_images.testing``).
        capture_prompts: put prompts (and error messages, which may quote
            them) on OpenTelemetry spans; off by default.
        tracer_provider: an OpenTelemetry ``TracerProvider`` for this
            client's spans; default the global one (see docs/observability.md).
        meter_provider: an OpenTelemetry ``MeterProvider`` for this client's
            metrics; default the global one.

    Raises:
        LinkAIError: no API key was given or found in the environment, the
            base URL is not http(s), the limiter URL is not a Redis URL, or
            ``limiter_url`` needs the ``redis`` extra (``LimiterError``).
        ValueError: a rate that is not ``N/second|minute|hour``, or a
            ``limiter_url`` with no rate limit to share.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | httpx.URL | None = None,
        default_model: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_policy: RetryPolicy | None = None,
        retry_budget: RetryBudget | Literal[_Default.TOKEN] | None = _NEW_BUDGET,
        on_retry: RetryHook | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rate_limit: str | None = None,
        model_rate_limits: Mapping[str, str] | None = None,
        adaptive_concurrency: bool = False,
        limiter_url: str | None = None,
        limiter_prefix: str = DEFAULT_LIMITER_PREFIX,
        limiter_fallback: bool = False,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        capture_prompts: bool = False,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}")
        if image_cache_bytes < 0:
            raise ValueError(f"image_cache_bytes must be 0 or more, got {image_cache_bytes!r}")
        if deadline is not None and deadline <= 0:
            raise ValueError(f"deadline must be positive seconds, got {deadline!r}")
        if http_client is not None and transport is not None:
            raise ValueError("pass http_client or transport, not both")
        self._api_key = resolve_api_key(api_key)
        self._base_url = resolve_base_url(base_url)
        self.default_model = default_model
        self._timeout = to_timeout(timeout)
        self.deadline = deadline
        self.retry_policy = retry_policy or RetryPolicy(max_attempts=max_retries + 1)
        self.retry_budget = RetryBudget() if retry_budget is _NEW_BUDGET else retry_budget
        self.on_retry = on_retry
        self.max_concurrency = max_concurrency
        self.max_image_bytes = max_image_bytes
        self._images = ImageCache(image_cache_bytes)
        self.rate_limit = rate_limit
        self.model_rate_limits = dict(model_rate_limits or {})
        self.adaptive_concurrency = adaptive_concurrency
        self._pacer = self._build_pacer(
            rate_limit,
            model_rate_limits,
            adaptive_concurrency,
            resolve_limiter_url(limiter_url),
            limiter_prefix,
            limiter_fallback,
            explicit_url=limiter_url is not None,
        )
        self._owns_http = http_client is None
        self._send: Sender
        # Set when the own transport has a lean POST: aiohttp's or the pool (see _send_direct).
        self._post: LeanPost
        if http_client is None:
            self._transport = transport or build_transport(max_concurrency)
            self._http = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
            )
            # Generation calls go straight to the transport: AsyncClient.send's
            # auth, cookie and redirect machinery does nothing for one POST to a
            # fixed URL, and costs a third of the client's CPU per request.
            self._send = self._send_direct
        else:
            self._http = http_client
            self._send = self._send_via_client
        self._endpoint = Endpoint.build(
            self._base_url.join("images/generations"),
            {
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            self._timeout,
            secret=self._api_key,
        )
        # fast_acquire: no extra trip through the event loop when a slot is
        # free; the request that follows yields to the loop anyway.
        self._limiter = anyio.Semaphore(max_concurrency, fast_acquire=True)
        self._telemetry = Telemetry(
            base_url=self._base_url,
            endpoint=self._endpoint.url,
            capture_prompts=capture_prompts,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            budget=self.retry_budget,
        )
        self._state = _State.OPEN
        self._downloader: ImageStore | None = None

    def _build_pacer(
        self,
        rate_limit: str | None,
        model_rate_limits: Mapping[str, str] | None,
        adaptive: bool,
        limiter_url: str | None,
        prefix: str,
        fallback: bool,
        *,
        explicit_url: bool,
    ) -> Pacer | None:
        if rate_limit is None and not model_rate_limits and not adaptive and not explicit_url:
            return None  # none until the platform asks for a pause; _pacing stays unimported
        from ._pacing import Pacer, parse_model_rates, parse_rate

        rate = parse_rate(rate_limit) if rate_limit is not None else None
        model_rates = parse_model_rates(model_rate_limits)
        if explicit_url and rate is None and not model_rates:
            raise ValueError(
                "limiter_url shares rate limits between processes, but none is set; "
                "add rate_limit= and/or model_rate_limits="
            )
        if rate is None and not model_rates and not adaptive:
            return None  # none until the platform asks for a pause: nothing on the hot path
        backend = None
        if limiter_url is not None and (rate is not None or model_rates):
            from ._pacing.shared import RedisRates

            backend = RedisRates(limiter_url, rate, model_rates, prefix=prefix, fallback=fallback)
        return Pacer(
            max_concurrency=self.max_concurrency,
            rate=rate,
            model_rates=model_rates,
            adaptive=adaptive,
            backend=backend,
            max_pause=self.retry_policy.max_retry_after,
            skip_pauses=is_testing,
        )

    def concurrency_limit(self, model: str | None = None) -> int:
        """The requests of ``model`` allowed in flight now.

        With ``adaptive_concurrency=True``, the model's current adaptive
        limit (it starts low and settles under what the platform takes);
        otherwise ``max_concurrency``.

        Args:
            model: the model code; default the client's ``default_model``.
        """
        model = model if model is not None else self.default_model
        if self._pacer is None:
            return self.max_concurrency
        return self._pacer.concurrency_limit(model)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={str(self.base_url)!r}, "
            f"api_key={mask_secret(self._api_key)!r}, default_model={self.default_model!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    @property
    def base_url(self) -> httpx.URL:
        """The API's base URL (fixed when the client is made)."""
        return self._base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts of one attempt (fixed when the client is made)."""
        return self._timeout

    @property
    def is_closed(self) -> bool:
        """Whether ``aclose()`` has been called."""
        return self._state is _State.CLOSED

    async def __aenter__(self) -> AsyncImageClient:
        self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it was injected). Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        try:
            if self._pacer is not None:
                await self._pacer.aclose()
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def _send_direct(self, body: Sequence[bytes]) -> Answer:
        transport = self._transport
        if (
            isinstance(transport, AutoTransport)
            and (post := transport.lean_post(self._endpoint.request(b""))) is not None
        ):
            # From now on, the chosen transport's lean path (_send_lean).
            self._post = post
            self._send = self._send_lean
            return await self._send_lean(body)
        request = self._endpoint.request(body)
        return await _read(await transport.handle_async_request(request), request)

    async def _send_lean(self, body: Sequence[bytes]) -> Answer:
        request = self._endpoint.request
        got = await self._post(body, request)
        if isinstance(got, httpx.Response):  # a large, unsized or compressed answer
            assert got.request is not None
            return await _read(got, got.request)
        status, reason, headers, content = got
        return Answer(status, headers, content, reason=reason, request=request, body=body)

    async def _send_via_client(self, body: Sequence[bytes]) -> Answer:
        return Answer.of(await self._http.send(self._endpoint.request(body)))

    def _ensure_open(self) -> None:
        if self._state is _State.CLOSED:
            raise ClientClosedError(
                f"this {type(self).__name__} is closed; create a new client to send requests"
            )

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        images: Sequence[ImageInput] | ImageInput | None = None,
        size: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        response_format: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        on_retry: RetryHook | None = None,
    ) -> ImageResponse:
        """Generate images from a prompt, optionally from reference images.

        Only the fields given are sent; the platform applies the model's
        defaults to the rest.

        Args:
            prompt: what to draw; with ``images``, how to change them.
            model: the model code; default the client's ``default_model``.
            images: reference images: URLs, data URIs, paths, bytes, binary
                file objects or PIL images (one item or a list).
            size: a tier (``1K``, ``2K``, ``4K``, ...) or pixels that map to a
                tier and ratio exactly (``2048x1152``).
            aspect_ratio: ``16:9`` and the like.
            quality: a quality value of the model.
            response_format: ``url`` (default on the platform) or ``b64_json``.
            extra_body: more JSON fields, sent as given.
            on_retry: a retry hook for this call, in addition to the client's.

        Returns:
            The images, with the attempts made and the time taken.

        Raises:
            RequestValidationError: a bad argument, found before sending.
            APIStatusError: the API refused (the subclass names why).
            APIConnectionError: no answer; ``request_sent`` tells whether it
                may have been billed.
        """
        request = ImageRequest(
            prompt=prompt,
            model=model,
            images=images,
            size=size,
            aspect_ratio=aspect_ratio,
            quality=quality,
            response_format=response_format,
            extra_body=extra_body,
        )
        return await self._generate(self.check(request), on_retry=on_retry)

    def check(self, request: ImageRequest) -> ImageRequest:
        """Validate a request without sending it; return it with its model filled in.

        Raises:
            RequestValidationError: what is wrong, with the allowed values.
        """
        if not isinstance(request.prompt, str):
            raise RequestValidationError(
                f"prompt must be a string, not {type(request.prompt).__name__}"
            )
        return check_request(request, self.default_model, max_image_bytes=self.max_image_bytes)

    async def _generate(
        self, request: ImageRequest, *, on_retry: RetryHook | None = None
    ) -> ImageResponse:
        """Send a request already passed through ``check``."""
        self._ensure_open()
        started = time.monotonic()
        telemetry = self._telemetry
        trace: CallTrace | None = None
        # Off (the usual case): one comparison, see Telemetry.next_check; no frame is added.
        if telemetry.next_check <= started and telemetry.enabled(started):
            trace = telemetry.call(request)
            trace.begin()
        try:
            encoded = (
                await encode_body(request, max_image_bytes=self.max_image_bytes, cache=self._images)
                if request.images
                else encode_json(request)
            )
            try:
                response = await self._send_body(request, encoded.pieces, on_retry, started, trace)
            finally:
                encoded.release()
        except BaseException as exc:
            if trace is not None:
                trace.end(exc)
            raise
        if trace is not None:
            trace.succeeded(response)
            trace.end(None)
        return response

    async def _send_body(
        self,
        request: ImageRequest,
        body: tuple[bytes, ...],
        on_retry: RetryHook | None,
        started: float,
        trace: CallTrace | None,
    ) -> ImageResponse:
        """Send an encoded body, with the client's retries and pacing."""
        call = _Call(self, request, body, trace)
        hook = self._retry_hook(on_retry)
        retried = call_with_retries(
            call.attempt,
            self.retry_policy,
            budget=self.retry_budget,
            on_retry=hook if trace is None else trace.retry_hook(hook),
            model=request.model,
            prompt=request.prompt,
            paused=call.waited,
        )
        if self.deadline is None:
            result, attempts = await retried
        else:
            try:
                with anyio.fail_after(self.deadline) as call.deadline:
                    result, attempts = await retried
            except TimeoutError as exc:
                raise APITimeoutError(
                    f"the call's deadline of {self.deadline}s passed after "
                    f"{call.attempts} attempt(s)",
                    request_sent=call.attempts > 0,
                    attempts=call.attempts,
                ) from exc
        elapsed = time.monotonic() - started
        return self._response(result, request, attempts, elapsed)

    def _pause(self, model: str | None, error: APIStatusError) -> None:
        """The platform asked for a pause: from now on this client paces its attempts."""
        if is_testing():
            return
        if self._pacer is None:
            from ._pacing import Pacer

            self._pacer = Pacer(
                max_concurrency=self.max_concurrency,
                max_pause=self.retry_policy.max_retry_after,
                skip_pauses=is_testing,
            )
        self._pacer.hint(model, error)

    def _retry_hook(self, extra: RetryHook | None) -> RetryHook | None:
        """The client's hook and a call's own, both called, the client's first."""
        first = self.on_retry
        if extra is None or first is None:
            return extra or first
        second = extra

        def both(event: RetryEvent) -> None:
            first(event)
            second(event)

        return both

    def _response(
        self, result: GenerationResult, request: ImageRequest, attempts: int, elapsed: float
    ) -> ImageResponse:
        images = []
        store = self._store()
        for item in result.body["data"]:
            url = item.get("url") if isinstance(item, dict) else None
            b64_json = item.get("b64_json") if isinstance(item, dict) else None
            if not (isinstance(url, str) and url) and not (isinstance(b64_json, str) and b64_json):
                raise APIResponseValidationError(
                    "an item of 'data' has no 'url' or 'b64_json' string: "
                    f"{self._endpoint.redact(_short_repr(item))}",
                    body=result.body,
                    attempts=attempts,
                )
            images.append(
                GeneratedImage(
                    url=_opt_str(url),
                    b64_json=_opt_str(b64_json),
                    revised_prompt=_opt_str(item.get("revised_prompt")),
                    store=store,
                )
            )
        if not images:
            raise APIResponseValidationError(
                "the API answered 200 with no images in 'data'", body=result.body, attempts=attempts
            )
        created = result.body.get("created")
        return ImageResponse(
            data=tuple(images),
            created=created if isinstance(created, int) else None,
            model=request.model,
            attempts=attempts,
            elapsed=elapsed,
            request_id=result.request_id,
            rate_limit_headers=result.rate_limit_headers,
        )

    def _store(self) -> ImageStore:
        if self._downloader is None:
            from ._outputs.download import Downloader

            self._downloader = Downloader(self._http)
        return self._downloader

    # --- batches (engine in _batch.py) ---

    @overload
    async def generate_many(
        self,
        requests: RequestSource,
        *,
        concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        progress: ProgressArg = ...,
        checkpoint: CheckpointPath = ...,
        prices: PriceArg = ...,
        max_cost: float | None = ...,
        resend_uncertain: bool = ...,
    ) -> list[ImageResponse]: ...

    @overload
    async def generate_many(
        self,
        requests: RequestSource,
        *,
        concurrency: int | None = ...,
        return_exceptions: bool,
        progress: ProgressArg = ...,
        checkpoint: CheckpointPath = ...,
        prices: PriceArg = ...,
        max_cost: float | None = ...,
        resend_uncertain: bool = ...,
    ) -> list[ImageResponse | BaseException]: ...

    async def generate_many(
        self,
        requests: RequestSource,
        *,
        concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: ProgressArg = None,
        checkpoint: CheckpointPath = None,
        prices: PriceArg = None,
        max_cost: float | None = None,
        resend_uncertain: bool = False,
    ) -> list[ImageResponse] | list[ImageResponse | BaseException]:
        """Generate a batch of requests concurrently; the results align with the inputs.

        Every request is checked before any is sent, so a typo in request
        9,999 costs nothing. Then a pool of ``concurrency`` workers sends
        them, keeping that many in flight until the input runs out. One
        failure never stops the others, except an account-level one (401 bad
        key, 406 no credits): after it no new request is sent, and those not
        sent end with ``BatchAbortedError``. Cancelling the call cancels the
        requests in flight; the client stays usable.

        Args:
            requests: ``ImageRequest`` objects, dicts of their fields, or
                prompt strings (drawn with the client's ``default_model``);
                a list, any iterable, or an async iterable (read fully
                first, since every request is checked before sending).
            concurrency: requests in flight at once; default and maximum the
                client's ``max_concurrency`` (which still bounds all the
                client's requests together).
            return_exceptions: ``True`` puts each failure's exception in its
                place in the list instead of raising ``BatchError``.
            progress: ``True`` for a ``tqdm.auto`` bar (the ``progress``
                extra), or a callable taking each ``ProgressEvent``.
            checkpoint: a JSON Lines journal, crash-safe: each request is
                recorded before it is sent and when it settles. A rerun with
                the same file returns the earlier successes from it without
                sending them again and retries the failures. A request an
                earlier run sent without a result (killed, cancelled, or an
                answer lost in flight) may have been billed: it ends with
                ``UncertainRequestError`` and is not sent again.
            prices: what one image costs, by model and size: ``Prices``, a dict
                of the same layout, or a ``.json``/``.toml`` file (see
                docs/batches.md). Needed by ``max_cost``.
            max_cost: a spending cap, in the prices' currency. Before each
                request is sent its estimated cost is added to that of the
                requests already sent; once it would pass ``max_cost``, no
                new request starts, and those not sent end with
                ``CostLimitError``. Every request must have a price (checked
                before anything is sent).
            resend_uncertain: send those uncertain requests again anyway
                (each may be billed a second time).

        Returns:
            One entry per request, in input order: an ``ImageResponse`` (or,
            with ``return_exceptions=True``, the exception it ended with).

        Raises:
            RequestValidationError: a request is invalid (the message names
                its index); nothing was sent.
            BatchError: some requests failed (``return_exceptions=False``),
                raised after all settled; ``.results`` holds every result,
                successes included.
            ValueError: ``concurrency`` is below 1 or above ``max_concurrency``;
                ``max_cost`` without ``prices``; a bad prices file.
            LinkAIError: the checkpoint is in use by another running batch.
            ClientClosedError: the client is closed.
        """
        if _BATCH_ENGINE not in sys.modules:
            # About 12 ms of module code (the engine, its checkpoint and progress, anyio's
            # memory streams): run in a worker thread, the event loop keeps turning.
            await anyio.to_thread.run_sync(_import_batch_engine)
        from ._batch.engine import generate_many

        return await generate_many(
            self,
            requests,
            concurrency=concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            checkpoint=checkpoint,
            prices=prices,
            max_cost=max_cost,
            resend_uncertain=resend_uncertain,
        )

    def as_completed(
        self,
        requests: RequestSource,
        *,
        concurrency: int | None = None,
        progress: ProgressArg = None,
        checkpoint: CheckpointPath = None,
        prices: PriceArg = None,
        max_cost: float | None = None,
        resend_uncertain: bool = False,
    ) -> BatchIterator:
        """Run a batch and yield each request as it settles, fastest first.

        The input is pulled lazily, a request whenever a worker is free, so a
        generator of a million prompts runs in memory bounded by the
        concurrency. Each item is a ``BatchItem`` with the request's
        ``index`` and exactly one of ``response``/``error``; a request that
        fails its checks comes out as an item with a
        ``RequestValidationError``. Use it as a context manager, so that
        leaving the loop early cancels what is still in flight::

            async with client.as_completed(prompts, concurrency=16) as results:
                async for item in results:
                    if item.ok:
                        await item.response.save_all("out/")

        A plain ``async for item in client.as_completed(...)`` works too and
        may be left at any point, but runs the requests in waves (the pool
        refills until ``concurrency`` results are ready, then drains), since
        nothing may run between two steps of a plain loop; ``async with``
        keeps the pool full all along.

        Args:
            requests: ``ImageRequest`` objects, dicts of their fields or prompt
                strings, from any iterable or async iterable.
            concurrency: requests in flight at once; default and maximum the
                client's ``max_concurrency``.
            progress: ``True`` for a ``tqdm.auto`` bar, or a callable taking
                each ``ProgressEvent``.
            checkpoint: a JSON Lines journal, as for ``generate_many``;
                earlier successes are yielded at once, without a request.
            prices: what one image costs, as for ``generate_many``.
            max_cost: a spending cap, as for ``generate_many``; requests not
                sent because of it come out with ``CostLimitError``, and one
                without a price with ``RequestValidationError``.
                earlier successes are yielded at once, without a request,
                and requests an earlier run left uncertain come out as
                items whose error is ``UncertainRequestError``.
            resend_uncertain: send those uncertain requests again anyway.

        Returns:
            An async iterator (and async context manager) of ``BatchItem``.

        Raises:
            ValueError: ``concurrency`` is below 1 or above ``max_concurrency``.
            TypeError: ``requests`` is not an iterable of requests.
            Exception: whatever the input iterable raised, after the requests
                already in flight were yielded.
        """
        from ._batch.engine import as_completed

        return as_completed(
            self,
            requests,
            concurrency=concurrency,
            progress=progress,
            checkpoint=checkpoint,
            prices=prices,
            max_cost=max_cost,
            resend_uncertain=resend_uncertain,
        )

    async def plan(
        self,
        requests: RequestSource,
        *,
        prices: PriceArg = None,
        checkpoint: CheckpointPath = None,
    ) -> BatchPlan:
        """What a batch of ``requests`` would do and cost, without sending anything.

        Every request is checked as ``generate_many`` would check it; then
        the valid ones are counted by model, size and quality, the distinct
        reference images are listed with their total size (local files and
        data URIs; URLs are counted, not fetched), and with a ``checkpoint``
        the requests a resume would answer from it are counted out.

        Args:
            requests: as for ``generate_many`` (read fully).
            prices: what one image costs (``Prices``, a dict, or a
                ``.json``/``.toml`` file); adds a cost estimate.
            checkpoint: the checkpoint a run would use, if any.

        Returns:
            A frozen ``BatchPlan``.

        Raises:
            ValueError: a bad prices file.
            TypeError: ``requests`` is not an iterable of requests.
        """
        from ._batch.plan import plan_batch

        return await plan_batch(self, requests, prices=prices, checkpoint=checkpoint)


async def _read(response: httpx.Response, request: httpx.Request) -> Answer:
    """The answer of a response straight from a transport, its body read and decoded."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    try:
        # The raw body is read to its end here and decoded after, in one sync
        # step: a decoding error (a bad gzip body) raised mid-way through httpx's
        # aread() leaves its chain of async generators half-run, which trio
        # reports as ResourceWarnings when they are collected.
        chunks = []
        size = 0
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if len(chunks) > 1:  # a big body (an image inline): let the loop run between chunks
                await anyio.lowlevel.checkpoint()
        if size < BIG_ANSWER:
            raw = b"".join(chunks)
        else:  # bytes.join drops the GIL for big joins: in a thread, the loop runs meanwhile
            raw = await anyio.to_thread.run_sync(b"".join, chunks)
    finally:
        await stream.aclose()
    response.stream = httpx.ByteStream(raw)
    response.request = request
    response.read()
    return Answer.of(response)


class _Call:
    """The attempts of one call and the state they share.

    An object rather than a closure over the call's locals: each cell of a
    closure is one more object for the garbage collector per call in flight,
    and at 500 calls in flight the collector's passes cost more CPU than the
    closure's code.
    """

    __slots__ = ("attempts", "body", "client", "deadline", "paced", "request", "trace")

    def __init__(
        self,
        client: AsyncImageClient,
        request: ImageRequest,
        body: tuple[bytes, ...],
        trace: CallTrace | None,
    ) -> None:
        self.client = client
        self.request = request
        self.body = body
        self.trace = trace
        self.attempts = 0
        self.paced = 0.0  # seconds spent waiting for the pacer: kept out of every deadline
        self.deadline: anyio.CancelScope | None = None

    def waited(self) -> float:
        """The seconds the attempts waited for the pacer so far."""
        return self.paced

    def post(self) -> Awaitable[GenerationResult]:
        """One HTTP attempt, once a slot is held."""
        client = self.client
        return post_generation(client._send, client._endpoint, self.body)

    async def attempt(self) -> GenerationResult:
        """One attempt: its turn from the pacer (if any), a slot, the POST."""
        self.attempts += 1
        client, trace = self.client, self.trace
        client._ensure_open()
        pacer = client._pacer
        if pacer is None:
            try:
                if trace is not None:  # the attempt's span, the wait for its slot
                    return await trace.attempt(client._limiter, self.post)
                async with client._limiter:
                    return await self.post()
            except APIStatusError as exc:
                if exc.retry_after and exc.status_code in PAUSE_STATUSES:
                    client._pause(self.request.model, exc)
                raise
        deadline = self.deadline
        if deadline is None:
            ticket = await pacer.start(self.request.model)
            self.paced += ticket.waited
            waited = ticket.waited
        else:
            # The deadline stands still while the call waits for its turn.
            due, deadline.deadline = deadline.deadline, math.inf
            begun = anyio.current_time()
            try:
                ticket = await pacer.start(self.request.model)
            finally:
                waited = anyio.current_time() - begun
                self.paced += waited
                deadline.deadline = due + waited
        if trace is not None:
            trace.paced(waited)
        try:
            if trace is not None:
                result = await trace.attempt(client._limiter, self.post)
            else:
                async with client._limiter:
                    result = await self.post()
        except BaseException as exc:
            pacer.finish(ticket, exc)  # the pacer hears how the attempt it let through ended
            raise
        pacer.finish(ticket, None)
        return result


def _short_repr(value: object) -> str:
    """The repr of a decoded JSON value, cut to 200 characters."""
    try:
        text = repr(value)
    except RecursionError:  # nesting as deep as the JSON decoder allows
        text = f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 200 else text[:199] + "…"


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
