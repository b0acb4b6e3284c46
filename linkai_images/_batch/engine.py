"""The batch engine behind ``generate_many`` and ``as_completed``.

A batch is a pool of ``concurrency`` worker tasks pulling from one input,
not a task per request: each worker takes the next request, settles it (a
response or an error, never an exception out of the worker), hands it to a
sink and pulls again. So the requests in flight never exceed the
concurrency, the bound stays full while input remains, and memory follows
the concurrency rather than the size of the batch: nothing about a request
is kept once it has been handed on.

The sink of ``generate_many`` writes into the aligned result list. The
sink of ``as_completed`` depends on how its ``BatchIterator`` is used: inside
``async with`` the workers live in the block's task group and feed a memory
object stream; in a plain ``async for`` they run only inside ``__anext__``,
in waves, because a task group held open between two steps of a plain loop
would break the caller's cancel scopes when the loop is left. The client's
``max_concurrency`` still bounds requests across everything that shares the
client.

An account-level failure (401: bad key, 406: no credits) would fail every
further request the same way, so it stops the batch from sending: requests
pulled after it end with ``BatchAbortedError`` naming the cause. Requests
already in flight settle on their own.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sized,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._exceptions import (
    AuthenticationError,
    BatchAbortedError,
    BatchError,
    CheckpointError,
    InsufficientCreditsError,
    RequestValidationError,
    UncertainRequestError,
)
from .._models import BatchItem, BatchResults, ImageRequest, ImageResponse, ImageStore, RequestLike
from .._telemetry import BatchTrace, Telemetry
from .checkpoint import (
    Checkpoint,
    Uncertain,
    failure_record,
    fingerprint,
    intent_record,
    response_from_record,
    success_record,
)
from .prices import CostCap, PriceArg, cost_cap, to_prices
from .progress import ProgressArg, Tracker, make_tracker

if TYPE_CHECKING:
    from .._retry import RetryEvent, RetryHook

__all__ = [
    "BatchClient",
    "BatchIterator",
    "CheckpointPath",
    "RequestSource",
    "as_completed",
    "check_source",
    "generate_many",
    "materialize",
    "resolve_cap",
]


class BatchClient(Protocol):
    """What the engine needs of a client (``AsyncImageClient`` has it).

    Declared here so that the client imports the batch layer and never the
    other way round.
    """

    @property
    def max_concurrency(self) -> int: ...

    @property
    def _telemetry(self) -> Telemetry: ...

    def check(self, request: ImageRequest) -> ImageRequest: ...

    async def _generate(
        self, request: ImageRequest, *, on_retry: RetryHook | None = None
    ) -> ImageResponse: ...

    def _store(self) -> ImageStore: ...

    def _ensure_open(self) -> None: ...


#: What a batch takes: a sync or async iterable of requests (``ImageRequest``, dict, prompt).
RequestSource = Iterable[RequestLike] | AsyncIterable[RequestLike]
#: Where a batch journals its results (``None``: no checkpoint).
CheckpointPath = str | os.PathLike[str] | None

#: Errors after which no further request of the batch can succeed.
_ACCOUNT_ERRORS = (AuthenticationError, InsufficientCreditsError)
#: How many requests are checked between two yields to the event loop: a check with a
#: reference file (a ``stat``) costs 10-20 us, so 64 of them hold the loop about 1 ms.
_CHECK_SLICE = 64
#: How many invalid indices a validation error lists.
_MAX_LISTED = 10


def resolve_concurrency(client: BatchClient, concurrency: int | None) -> int:
    """The batch's bound: ``concurrency``, or the client's ``max_concurrency``.

    Raises:
        TypeError: not an int.
        ValueError: below 1 or above the client's ``max_concurrency``.
    """
    if concurrency is None:
        return client.max_concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise TypeError(f"concurrency must be an int, not {type(concurrency).__name__}")
    if not 1 <= concurrency <= client.max_concurrency:
        raise ValueError(
            f"concurrency must be between 1 and the client's max_concurrency "
            f"({client.max_concurrency}), got {concurrency}; raise max_concurrency on the "
            "client to go higher"
        )
    return concurrency


def check_source(requests: object) -> None:
    if isinstance(requests, (str, bytes, Mapping, ImageRequest)):
        raise TypeError(
            f"requests must be an iterable of requests, not a single "
            f"{type(requests).__name__}; wrap it in a list"
        )
    if not isinstance(requests, (Iterable, AsyncIterable)):
        raise TypeError(
            f"requests must be an iterable or async iterable of requests, "
            f"not {type(requests).__name__}"
        )


def _placeholder(raw: object) -> ImageRequest:
    """An ``ImageRequest`` standing for an input that could not be made into one."""
    if isinstance(raw, Mapping):
        prompt = raw.get("prompt")
        return ImageRequest(
            prompt=prompt if isinstance(prompt, str) else "",
            model=raw.get("model") if isinstance(raw.get("model"), str) else None,
        )
    return ImageRequest(prompt="")


def _invalid(index: int, exc: Exception) -> RequestValidationError:
    error = RequestValidationError(f"requests[{index}]: {exc}")
    error.__cause__ = exc
    return error


class _Source:
    """The input, pulled one request at a time by whichever worker is free."""

    def __init__(self, requests: RequestSource) -> None:
        self._async: AsyncIterator[Any] | None = None
        if isinstance(requests, AsyncIterable):
            self._async = requests.__aiter__()
            self._lock = anyio.Lock()
        else:
            self._iterator = iter(requests)
        self._next_index = 0
        self.exhausted = False
        self.error: BaseException | None = None

    async def pull(self) -> tuple[int, Any] | None:
        """The next ``(index, request)``, or ``None`` at the end (or after a failure)."""
        if self.exhausted:
            return None
        if self._async is None:
            try:
                raw = next(self._iterator)
            except StopIteration:
                self.exhausted = True
                return None
            except Exception as exc:
                self._fail(exc)
                return None
        else:
            async with self._lock:  # an async iterator takes one __anext__ at a time
                if self.exhausted:
                    return None
                try:
                    raw = await self._async.__anext__()
                except StopAsyncIteration:
                    self.exhausted = True
                    return None
                except Exception as exc:
                    self._fail(exc)
                    return None
        index = self._next_index
        self._next_index += 1
        return index, raw

    def _fail(self, exc: Exception) -> None:
        # The input broke: send nothing more, let what is in flight settle, then raise it.
        self.exhausted = True
        self.error = exc


_Sink = Callable[[BatchItem], Awaitable[None] | None]


class _Engine:
    """One batch run: the workers, the abort switch, progress and the checkpoint."""

    def __init__(
        self,
        client: BatchClient,
        source: _Source,
        *,
        concurrency: int,
        workers: int,
        checked: bool,
        tracker: Tracker | None,
        checkpoint: CheckpointPath | Checkpoint,
        prices: PriceArg = None,
        max_cost: float | None = None,
        operation: str,
        size: int | None,
        resend_uncertain: bool = False,
    ) -> None:
        self.client = client
        self.source = source
        self.concurrency = concurrency
        self._workers = workers
        self._checked = checked
        self._tracker = tracker
        self._resend_uncertain = resend_uncertain
        # A Checkpoint object is the caller's (the command line's): opened and closed by it.
        self._own_checkpoint = not isinstance(checkpoint, Checkpoint)
        self._checkpoint_path = None if isinstance(checkpoint, Checkpoint) else checkpoint
        self._checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else None
        self._abort: AuthenticationError | InsufficientCreditsError | None = None
        self._cap_args = (prices, max_cost) if max_cost is not None else None
        self.cap: CostCap | None = None
        self._operation = operation
        self._size = size
        self._trace: BatchTrace | None = None
        self._traced = False

    async def open_checkpoint(self) -> None:
        if self._cap_args is not None:
            self.cap = await resolve_cap(*self._cap_args)
            self._cap_args = None
        if self._checkpoint_path is not None and self._checkpoint is None:
            self._checkpoint = await Checkpoint.open(self._checkpoint_path)

    async def pump(self, sink: _Sink, stop: Callable[[], bool] | None = None) -> None:
        """Settle requests, handing each to ``sink``, until the input ends or ``stop()``.

        ``stop`` is asked before each pull: once it is true, no new request
        starts and ``pump`` returns when those in flight have settled.
        """
        await self.open_checkpoint()
        if not self._traced:  # the batch's span opens with its first request
            self._traced = True
            self._trace = self.client._telemetry.batch(
                self._operation, concurrency=self.concurrency, size=self._size
            )
        with contextlib.nullcontext() if self._trace is None else self._trace.current():
            # The workers start in the batch's span: each call's span is its child.
            async with anyio.create_task_group() as workers:
                for _ in range(self._workers):
                    workers.start_soon(self._work, sink, stop)

    async def run(self, sink: _Sink) -> None:
        """Settle every request of the input, then release the checkpoint and the bar."""
        try:
            await self.pump(sink)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Write out and release the checkpoint, close the progress bar. Idempotent."""
        if self._trace is not None:
            self._trace.end()
        try:
            if self._checkpoint is not None and self._own_checkpoint:
                await self._checkpoint.aclose()
        finally:
            if self._tracker is not None:
                self._tracker.close()

    def close_now(self) -> None:
        """``aclose`` without the event loop, for an iterator dropped unfinished."""
        if self._trace is not None:
            self._trace.end()
        try:
            if self._checkpoint is not None and self._own_checkpoint:
                self._checkpoint.close_now()
        finally:
            if self._tracker is not None:
                self._tracker.close()

    async def _work(self, sink: _Sink, stop: Callable[[], bool] | None) -> None:
        pull, settle, trace = self.source.pull, self._settle, self._trace
        while not (stop is not None and stop()) and (pulled := await pull()) is not None:
            item = await settle(*pulled)
            if trace is not None:
                trace.count(item)
            pending = sink(item)
            if pending is not None:
                await pending

    async def _settle(self, index: int, raw: Any) -> BatchItem:
        tracker = self._tracker
        if self._checked:
            request: ImageRequest = raw
        else:
            try:
                request = self.client.check(ImageRequest.coerce(raw))
            except Exception as exc:
                request = raw if isinstance(raw, ImageRequest) else _placeholder(raw)
                return await self._unsent(index, request, _invalid(index, exc))
        checkpoint = self._checkpoint
        fp = earlier = None
        if checkpoint is not None:
            try:
                fp = await fingerprint(request)
            except Exception:  # an unreadable reference: sent (and failing) as usual
                fp = None
            if fp is not None:
                record = checkpoint.take(fp)
                if record is not None:
                    response = response_from_record(record, self.client._store())
                    if self._trace is not None:
                        self._trace.restored += 1
                    if tracker is not None:
                        tracker.on_skipped(index, response)
                    await anyio.lowlevel.checkpoint()
                    return BatchItem(
                        index=index, request=request, response=response, fingerprint=fp
                    )
                earlier = checkpoint.take_uncertain(fp)
                if earlier is not None and not self._resend_uncertain:
                    error = UncertainRequestError(earlier.previous_error)
                    return await self._unsent(index, request, error, fp)
        if self._abort is not None:  # after the checkpoint: a result already paid for still counts
            return await self._unsent(index, request, BatchAbortedError(self._abort), fp)
        if self.cap is not None:  # a spending cap: reserve this request's estimated cost
            try:
                refused = self.cap.admit(request)
            except RequestValidationError as exc:  # no price for it (generate_many checked all)
                return await self._unsent(index, request, _invalid(index, exc), fp)
            if refused is not None:
                return await self._unsent(index, request, refused, fp)
        journal_id = None
        if checkpoint is not None and fp is not None:
            journal_id = checkpoint.new_id(index)
            try:
                await self._intent(checkpoint, journal_id, fp, index, request, earlier)
            except CheckpointError as exc:
                return await self._unsent(index, request, exc, fp)

        hook = None
        if tracker is not None:
            tracker.on_started(index)

            def hook(event: RetryEvent) -> None:
                tracker.on_retried(index, event)

        try:
            response = await self.client._generate(request, on_retry=hook)
        except Exception as exc:
            if isinstance(exc, _ACCOUNT_ERRORS) and self._abort is None:
                self._abort = exc
            if checkpoint is not None and fp is not None and journal_id is not None:
                await _outcome(checkpoint, failure_record(journal_id, fp, index, exc))
            if tracker is not None:
                tracker.on_failed(index, exc, sent=True)
            return BatchItem(index=index, request=request, error=exc, fingerprint=fp)
        if checkpoint is not None and fp is not None and journal_id is not None:
            # On disk before anyone downloads: a crash from here on never pays again.
            await _outcome(checkpoint, success_record(journal_id, fp, index, response))
        if tracker is not None:
            tracker.on_succeeded(index, response)
        return BatchItem(index=index, request=request, response=response, fingerprint=fp)

    @staticmethod
    async def _intent(
        checkpoint: Checkpoint,
        journal_id: str,
        fp: str,
        index: int,
        request: ImageRequest,
        earlier: Uncertain | None,
    ) -> None:
        """Journal that the request is about to be sent; it is sent only once this is on disk."""
        resends = earlier.id if earlier is not None else None
        try:
            await checkpoint.write(intent_record(journal_id, fp, index, request, resends=resends))
        except CheckpointError as exc:
            raise CheckpointError(f"not sent: {exc}") from exc.__cause__

    async def _unsent(
        self, index: int, request: ImageRequest, error: Exception, fp: str | None = None
    ) -> BatchItem:
        if self._tracker is not None:
            self._tracker.on_failed(index, error, sent=False)
        await anyio.lowlevel.checkpoint()  # nothing awaited otherwise: stay cancellable
        return BatchItem(index=index, request=request, error=error, fingerprint=fp)


async def _outcome(checkpoint: Checkpoint, record: dict[str, Any]) -> None:
    """Journal an outcome; a write error is kept by the checkpoint and warned about at close."""
    with contextlib.suppress(CheckpointError):
        await checkpoint.write(record)


async def materialize(requests: RequestSource) -> list[Any]:
    if isinstance(requests, AsyncIterable):
        return [request async for request in requests]
    return list(requests)


async def _check_all(client: BatchClient, raws: list[Any]) -> list[ImageRequest]:
    checked: list[ImageRequest] = []
    bad: list[tuple[int, Exception]] = []
    for index, raw in enumerate(raws):
        try:
            checked.append(client.check(ImageRequest.coerce(raw)))
        except Exception as exc:
            bad.append((index, exc))
        if index % _CHECK_SLICE == _CHECK_SLICE - 1:
            await anyio.lowlevel.checkpoint()
    if bad:
        index, first = bad[0]
        message = f"requests[{index}]: {first}"
        if len(bad) > 1:
            others = ", ".join(str(i) for i, _ in bad[1 : _MAX_LISTED + 1])
            more = "" if len(bad) <= _MAX_LISTED + 1 else ", ..."
            message += f" (and {len(bad) - 1} more invalid, at indices {others}{more})"
        raise RequestValidationError(f"nothing was sent: {message}") from first
    return checked


async def resolve_cap(prices: PriceArg, max_cost: float | None) -> CostCap | None:
    """The spending cap of ``prices=``/``max_cost=``; a prices file is read on a worker thread."""
    if isinstance(prices, (str, os.PathLike)):
        return cost_cap(await anyio.to_thread.run_sync(to_prices, prices), max_cost)
    return cost_cap(to_prices(prices), max_cost)


def _check_cap_args(prices: PriceArg, max_cost: float | None) -> None:
    """Fail at the call, not at the first request, when ``max_cost`` has no prices."""
    if max_cost is not None and prices is None:
        raise ValueError("max_cost needs prices=...: the SDK knows no prices of its own")


def _check_prices(cap: CostCap, checked: list[ImageRequest]) -> None:
    for index, request in enumerate(checked):
        try:
            cap.price_of(request)
        except RequestValidationError as exc:
            raise RequestValidationError(f"nothing was sent: request {index}: {exc}") from exc


async def generate_many(
    client: BatchClient,
    requests: RequestSource,
    *,
    concurrency: int | None = None,
    return_exceptions: bool = False,
    progress: ProgressArg = None,
    checkpoint: CheckpointPath = None,
    prices: PriceArg = None,
    max_cost: float | None = None,
    resend_uncertain: bool = False,
) -> list[Any]:
    """Run a batch to the end; see ``BatchClient.generate_many``."""
    bound = resolve_concurrency(client, concurrency)
    check_source(requests)
    _check_cap_args(prices, max_cost)
    client._ensure_open()
    cap = await resolve_cap(prices, max_cost)
    checked = await _check_all(client, await materialize(requests))
    if cap is not None:
        _check_prices(cap, checked)
    results: list[Any] = [None] * len(checked)

    def store(item: BatchItem) -> None:
        results[item.index] = item.response if item.error is None else item.error

    engine = _Engine(
        client,
        _Source(checked),
        concurrency=bound,
        workers=min(bound, len(checked)),
        checked=True,
        tracker=make_tracker(progress, len(checked)),
        checkpoint=checkpoint,
        operation="generate_many",
        size=len(checked),
        resend_uncertain=resend_uncertain,
    )
    engine.cap = cap
    await engine.run(store)
    settled = BatchResults(results)
    settled.requests = tuple(checked)
    if not return_exceptions and settled.errors:
        raise BatchError(settled) from settled.errors[0]
    return settled


class _State(enum.Enum):
    NEW = "new"
    STREAMING = "streaming"  # inside `async with`: workers run in the block's task group
    STEPPING = "stepping"  # plain `async for`: workers run only inside __anext__
    CLOSED = "closed"


class BatchIterator(AsyncIterator[BatchItem]):
    """The settled requests of a batch, in completion order (``client.as_completed``).

    Two ways to use it, both safe on asyncio and trio:

    - As an async context manager (the fast way): the workers' task group
      lives in the ``async with`` block, items stream out as they settle
      with the pool kept full, and leaving the block (at the end, by
      ``break``, on an error or a cancellation) cancels what is in flight::

          async with client.as_completed(prompts) as results:
              async for item in results:
                  ...

    - As a plain async iterator (``async for item in client.as_completed(...)``).
      Python gives an iterator no signal when a loop is left, and a task
      group may not outlive the call that opened it, so here requests run
      only while the loop waits in ``__anext__``: each wave keeps the pool
      full until ``concurrency`` results are ready, lets the requests in
      flight finish, and hands the results out in completion order. Nothing
      runs between two steps, so leaving the loop in any way leaks nothing;
      the price is some idle pool at the end of each wave.
    """

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self._state = _State.NEW
        self._send: MemoryObjectSendStream[BatchItem] | None = None
        self._receive: MemoryObjectReceiveStream[BatchItem] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._ready: collections.deque[BatchItem] = collections.deque()

    async def __aenter__(self) -> BatchIterator:
        if self._state is not _State.NEW:
            raise RuntimeError("this as_completed() iterator was already started")
        self._state = _State.STREAMING
        try:
            self._engine.client._ensure_open()
            await self._engine.open_checkpoint()  # a locked checkpoint fails here, at once
        except BaseException:
            self._state = _State.CLOSED
            raise
        # A buffer as deep as the pool: workers go on while the consumer handles an item.
        send, self._receive = anyio.create_memory_object_stream[BatchItem](self._engine.concurrency)
        self._send = send
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._produce, send)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(exc_type, exc, tb)

    def __aiter__(self) -> BatchIterator:
        return self

    async def __anext__(self) -> BatchItem:
        if self._state is _State.STREAMING:
            return await self._next_streamed()
        if self._state is _State.NEW:
            self._engine.client._ensure_open()
            self._state = _State.STEPPING
        if not self._ready and self._state is _State.STEPPING:
            await self._wave()
        if self._ready:
            return self._ready.popleft()
        await self.aclose()
        self._raise_input_error()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Cancel the requests still in flight, wait for them, and end the iteration."""
        await self._close(None, None, None)

    # -- inside `async with` ----------------------------------------------------

    async def _produce(self, send: MemoryObjectSendStream[BatchItem]) -> None:
        async with send:
            await self._engine.run(send.send)

    async def _next_streamed(self) -> BatchItem:
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        self._raise_input_error()
        raise StopAsyncIteration

    # -- plain `async for` ------------------------------------------------------

    async def _wave(self) -> None:
        engine, ready = self._engine, self._ready
        if engine.source.exhausted:
            return
        try:
            await engine.pump(ready.append, stop=lambda: len(ready) >= engine.concurrency)
        except BaseException:
            await self.aclose()
            raise

    # -- common -----------------------------------------------------------------

    def _raise_input_error(self) -> None:
        error, self._engine.source.error = self._engine.source.error, None
        if error is not None:
            raise error

    async def _close(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        self._ready.clear()
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                tg.cancel_scope.cancel()
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    # The task group's scope decides whether this cancellation was its own.
                    await tg.__aexit__(exc_type, exc, tb)
                else:
                    # Any other error of the consumer's passes by the group unwrapped.
                    await tg.__aexit__(None, None, None)
        finally:
            # The producer may have been cancelled before it ran: close what it would have.
            for stream in (self._send, self._receive):
                if stream is not None:
                    stream.close()
            await self._engine.aclose()

    def __del__(self) -> None:
        # A plain loop left early: nothing runs, but the checkpoint file may still be open.
        if self._state is _State.STEPPING:
            self._engine.close_now()


def as_completed(
    client: BatchClient,
    requests: RequestSource,
    *,
    concurrency: int | None = None,
    progress: ProgressArg = None,
    checkpoint: CheckpointPath | Checkpoint = None,
    prices: PriceArg = None,
    max_cost: float | None = None,
    resend_uncertain: bool = False,
) -> BatchIterator:
    """Build the iterator of ``BatchClient.as_completed``.

    ``checkpoint`` may also be a ``Checkpoint`` the caller opened (and closes).
    """
    bound = resolve_concurrency(client, concurrency)
    check_source(requests)
    _check_cap_args(prices, max_cost)
    total = len(requests) if isinstance(requests, Sized) else None
    engine = _Engine(
        client,
        _Source(requests),
        concurrency=bound,
        workers=bound if total is None else max(1, min(bound, total)),
        checked=False,
        tracker=make_tracker(progress, total),
        checkpoint=checkpoint,
        prices=prices,
        max_cost=max_cost,
        operation="as_completed",
        size=total,
        resend_uncertain=resend_uncertain,
    )
    return BatchIterator(engine)
