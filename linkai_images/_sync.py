"""``ImageClient``: the blocking twin of ``AsyncImageClient``, for scripts and notebooks.

No logic lives here. The client owns one ``AsyncImageClient`` and a daemon
thread running an event loop (reached through an anyio ``BlockingPortal``);
each method hands its coroutine to that loop and waits. So it works in a
plain script, from many threads at once, and inside a running Jupyter kernel
or ``asyncio.run`` (whose loop is in the calling thread, not ours). The thread
is a daemon and a finalizer stops it: a script that forgets ``close()`` exits.

The results it returns are bound to a ``_BlockingStore``: their ``read()``,
``save()`` and ``save_all()`` block instead of returning coroutines, and their
types (``ImageResponse[BlockingImageStore]``) say so to mypy and to editors.

Twins: the constructor and every method take exactly the arguments of their
``AsyncImageClient`` twin (``tests/client/test_twins.py`` compares them one by
one) and forward them by name, so adding an argument to the async client means
adding the same line to the twin's signature here, and nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import anyio
import httpx
from anyio.from_thread import BlockingPortal

from ._client import _NEW_BUDGET, AsyncImageClient, _Default
from ._config import (
    DEFAULT_LIMITER_PREFIX,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from ._exceptions import BatchError, ClientClosedError
from ._http.transport import DOWNLOAD_CONNECTIONS
from ._inputs.cache import DEFAULT_IMAGE_CACHE_BYTES
from ._inputs.images import DEFAULT_MAX_IMAGE_BYTES
from ._models import (
    BatchItem,
    BlockingImageStore,
    GeneratedImage,
    ImageRequest,
    ImageResponse,
    ImageStore,
    RequestLike,
    bind,
    bind_item,
)
from ._outputs.download import standalone_store
from ._outputs.results import save_results
from ._retry import RetryBudget, RetryPolicy

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._batch.engine import CheckpointPath, RequestSource
    from ._batch.plan import BatchPlan
    from ._batch.prices import PriceArg
    from ._batch.progress import ProgressArg
    from ._inputs.images import ImageInput
    from ._retry import RetryHook

__all__ = ["ImageClient"]

T = TypeVar("T")
Blocking = ImageResponse[BlockingImageStore]


class _LoopThread:
    """A daemon thread running an event loop that other threads submit work to."""

    def __init__(self) -> None:
        ready = threading.Event()
        self._portal: BlockingPortal | None = None
        self._failure: BaseException | None = None

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._portal = portal
                ready.set()
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve)
            except BaseException as exc:  # pragma: no cover - the loop failed to start
                self._failure = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="linkai-images-loop", daemon=True)
        self._thread.start()
        ready.wait()
        if self._portal is None:  # pragma: no cover - the loop failed to start
            raise RuntimeError("could not start the client's event-loop thread") from self._failure

    @property
    def portal(self) -> BlockingPortal:
        assert self._portal is not None
        return self._portal

    @property
    def running(self) -> bool:
        """Whether work can still be handed to the loop."""
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            try:
                self.portal.call(self.portal.stop)
            except RuntimeError:  # already stopping
                pass
            self._thread.join(timeout=10)


def _shutdown(loop: _LoopThread, client: AsyncImageClient) -> None:
    # Runs from close() or, for a forgotten client, from the garbage collector or at exit.
    try:
        loop.portal.call(client.aclose)
    except (RuntimeError, CancelledError):  # pragma: no cover - loop already gone
        pass
    loop.stop()


def _run_detached(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``func`` to completion on an event loop of its own, in a short-lived thread.

    A thread, because the caller's may already run a loop (a Jupyter kernel).
    """
    with ThreadPoolExecutor(1, thread_name_prefix="linkai-images-detached") as pool:
        return pool.submit(anyio.run, func, *args).result()


class _BlockingStore:
    """The store of ``ImageClient`` results: the client's downloader, run on its loop.

    Once the client is closed, an image still reads and saves: through a
    short-lived pool on a loop of its own (its URL needs no credential).
    """

    def __init__(self, loop: _LoopThread, store: ImageStore) -> None:
        self._loop = loop
        self._store = store

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(getattr(self._store, name), *args, **kwargs)
        if self._loop.running:
            try:
                return self._loop.portal.call(call)
            except RuntimeError:
                if self._loop.running:
                    raise  # not a stopped loop: an error of the call itself
        return _run_detached(functools.partial(getattr(standalone_store(), name), *args, **kwargs))

    def read(self, image: GeneratedImage[Any], *, text: Mapping[str, str] | None = None) -> bytes:
        return cast(bytes, self._call("read", image, text=text))

    def save(
        self,
        image: GeneratedImage[Any],
        path: str | os.PathLike[str],
        *,
        text: Mapping[str, str] | None = None,
    ) -> Path:
        return cast(Path, self._call("save", image, path, text=text))

    def save_all(
        self, images: Sequence[GeneratedImage[Any]], directory: str | os.PathLike[str]
    ) -> list[Path]:
        return cast("list[Path]", self._call("save_all", images, directory))


def _arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    """A method's arguments from its ``locals()`` (taken first thing), minus ``self``."""
    return {name: value for name, value in values.items() if name != "self"}


def _twin(
    async_method: Callable[..., Any], *, images: bool = True
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Give a blocking method the docstring of its async twin, with a note on blocking."""
    note = f"Blocking twin of ``{async_method.__qualname__}``: the same arguments, no ``await``."
    if images:
        note += "\n        The images it returns read and save without ``await`` too."

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        method.__doc__ = f"{(async_method.__doc__ or '').rstrip()}\n\n        {note}\n"
        return method

    return decorate


class ImageClient:
    """The blocking LinkAI image client: ``AsyncImageClient`` without ``await``.

    Takes the same arguments as ``AsyncImageClient`` and offers the same calls,
    blocking. The images it returns read and save without ``await`` as well
    (``client.generate(...).data[0].save("fox.png")``). Safe to share between
    threads; works in a Jupyter notebook, whose kernel already runs an event
    loop. Close it with ``close()`` or a ``with`` block.
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
        self._async = AsyncImageClient(**_arguments(locals()))
        self._loop = _LoopThread()
        self._blocking = _BlockingStore(self._loop, self._async._store())
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._async)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncImageClient", "ImageClient", 1)

    @property
    def async_client(self) -> AsyncImageClient:
        """The ``AsyncImageClient`` underneath (used from its own loop thread only)."""
        return self._async

    @property
    def default_model(self) -> str | None:
        """The model used when a call names none."""
        return self._async.default_model

    @property
    def base_url(self) -> httpx.URL:
        """The API's base URL (fixed when the client is made)."""
        return self._async.base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeouts of one attempt (fixed when the client is made)."""
        return self._async.timeout

    def __enter__(self) -> ImageClient:
        self._ensure_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pool and stop the loop thread. Idempotent.

        Images already returned still read and save afterwards, each through
        a short-lived connection of its own.
        """
        self._finalizer()

    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return not self._finalizer.alive

    def _ensure_open(self) -> None:
        if not self._finalizer.alive:
            raise ClientClosedError("this ImageClient is closed; create a new client")

    def _run(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        self._ensure_open()
        return self._loop.portal.call(func, *args)

    def _bound(self, result: T) -> T:
        """A result with its images bound to the blocking store; anything else as it is."""
        if isinstance(result, ImageResponse):
            return cast(T, bind(result, self._blocking))
        return result

    @_twin(AsyncImageClient.generate)
    def generate(
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
    ) -> Blocking:
        arguments = _arguments(locals())

        async def call() -> ImageResponse:
            return await self._async.generate(**arguments)

        return bind(self._run(call), self._blocking)

    @_twin(AsyncImageClient.check, images=False)
    def check(self, request: ImageRequest) -> ImageRequest:
        return self._async.check(**_arguments(locals()))

    @overload
    def generate_many(
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
    ) -> list[Blocking]: ...

    @overload
    def generate_many(
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
    ) -> list[Blocking | BaseException]: ...

    @_twin(AsyncImageClient.generate_many)
    def generate_many(
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
    ) -> list[Blocking] | list[Blocking | BaseException]:
        arguments = _arguments(locals())

        async def call() -> list[Any]:
            results: list[Any] = await self._async.generate_many(**arguments)
            return results

        try:
            results = self._run(call)
        except BatchError as exc:
            exc.results[:] = [self._bound(result) for result in exc.results]
            raise
        results[:] = [self._bound(result) for result in results]  # keeps the list's class
        return results

    @_twin(AsyncImageClient.as_completed)
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
    ) -> Iterator[BatchItem[BlockingImageStore]]:
        arguments = _arguments(locals())
        self._ensure_open()
        portal = self._loop.portal
        send, receive = anyio.create_memory_object_stream[BatchItem](0)

        async def drive() -> None:
            # The context-manager form keeps the bound full; a bare async for
            # would run in waves (see AsyncImageClient.as_completed).
            async with send, self._async.as_completed(**arguments) as items:
                async for item in items:
                    await send.send(item)

        def iterate() -> Iterator[BatchItem[BlockingImageStore]]:
            future = portal.start_task_soon(drive)
            try:
                while True:
                    try:
                        item = portal.call(receive.receive)
                    except anyio.EndOfStream:
                        break
                    yield bind_item(item, self._blocking)
                future.result()  # re-raise what ended the batch, if anything did
            finally:
                if not future.done():
                    future.cancel()
                    with contextlib.suppress(CancelledError, anyio.BrokenResourceError):
                        future.result(timeout=30)
                portal.call(receive.aclose)

        return iterate()

    @_twin(AsyncImageClient.plan, images=False)
    def plan(
        self,
        requests: RequestSource,
        *,
        prices: PriceArg = None,
        checkpoint: CheckpointPath = None,
    ) -> BatchPlan:
        arguments = _arguments(locals())

        async def call() -> BatchPlan:
            return await self._async.plan(**arguments)

        return self._run(call)

    @_twin(AsyncImageClient.concurrency_limit, images=False)
    def concurrency_limit(self, model: str | None = None) -> int:
        return self._async.concurrency_limit(**_arguments(locals()))

    # --- saving: blocking forms of what results of either client can do ---

    def read(self, image: GeneratedImage[Any]) -> bytes:
        """The bytes of a generated image; blocking. The API key is never sent."""
        return self._run(self._async._store().read, image)

    def save(self, image: GeneratedImage[Any], path: str | os.PathLike[str]) -> Path:
        """Save a generated image (to a file, or into a directory) atomically; blocking."""
        return self._run(self._async._store().save, image, path)

    def save_all(
        self, response: ImageResponse[Any], directory: str | os.PathLike[str]
    ) -> list[Path]:
        """Save every image of a response into ``directory``; blocking."""
        return self._run(self._async._store().save_all, response.data, directory)

    @_twin(save_results, images=False)
    def save_results(
        self,
        results: Sequence[ImageResponse[Any] | BaseException | None],
        directory: str | os.PathLike[str],
        *,
        requests: Sequence[RequestLike] | None = None,
        manifest: bool = False,
        provenance: bool = True,
        concurrency: int = DOWNLOAD_CONNECTIONS,
    ) -> list[list[Path] | None]:
        arguments = _arguments(locals())
        store = self._async._store()
        # Bound to the async store for the loop thread; the prompts stay with them.
        arguments["results"] = [
            bind(result, store) if isinstance(result, ImageResponse) else result
            for result in results
        ]
        if requests is None:
            arguments["requests"] = getattr(results, "requests", None) or None

        async def call() -> list[list[Path] | None]:
            saved: list[list[Path] | None] = await save_results(**arguments)
            return saved

        return self._run(call)


def _constructor_doc() -> str:
    # The constructor's arguments are documented once, on AsyncImageClient.
    own, twin = ImageClient.__doc__ or "", AsyncImageClient.__doc__ or ""
    return f"{own.rstrip()}\n\n    {twin[twin.index('Args:') :]}" if "Args:" in twin else own


ImageClient.__doc__ = _constructor_doc()
