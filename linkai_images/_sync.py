"""``ImageClient``: the blocking face of ``AsyncImageClient``, for scripts and notebooks.

No logic lives here. The client owns one ``AsyncImageClient`` and a daemon
thread running an event loop (reached through an anyio ``BlockingPortal``);
each method hands its coroutine to that loop and waits. So it works in a
plain script, from many threads at once, and inside a running Jupyter kernel
or ``asyncio.run`` (whose loop is in the calling thread, not ours). The thread
is a daemon and a finalizer stops it: a script that forgets ``close()`` exits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import CancelledError
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ._client import AsyncImageClient
from ._exceptions import ClientClosedError
from ._models import BatchItem, GeneratedImage, ImageResponse, RequestLike

if TYPE_CHECKING:
    from ._batch.plan import BatchPlan
    from ._batch.prices import PriceArg
    from ._inputs.images import ImageInput
    from ._retry import RetryHook

__all__ = ["ImageClient"]

T = TypeVar("T")


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


class ImageClient:
    """The blocking LinkAI image client.

    Takes the same arguments as ``AsyncImageClient`` and offers the same calls
    without ``await``. Safe to share between threads; usable in a Jupyter
    notebook. Close it with ``close()`` or a ``with`` block.

    Args:
        api_key: the API key; default ``$LINKAI_API_KEY``.
        **options: every keyword argument of ``AsyncImageClient``.

    Raises:
        LinkAIError: no API key was given or found in the environment.
    """

    def __init__(self, api_key: str | None = None, **options: Any) -> None:
        self._async = AsyncImageClient(api_key, **options)
        self._loop = _LoopThread()
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._async)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncImageClient", "ImageClient", 1)

    @property
    def async_client(self) -> AsyncImageClient:
        """The ``AsyncImageClient`` underneath (used from its own loop thread only)."""
        return self._async

    def concurrency_limit(self, model: str | None = None) -> int:
        """The requests of ``model`` allowed in flight now (see ``AsyncImageClient``)."""
        return self._async.concurrency_limit(model)

    @property
    def default_model(self) -> str | None:
        """The model used when a call names none."""
        return self._async.default_model

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
        """Close the pool and stop the loop thread. Idempotent."""
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
    ) -> ImageResponse:
        """Generate images; blocking. See ``AsyncImageClient.generate``."""

        async def call() -> ImageResponse:
            return await self._async.generate(
                prompt,
                model=model,
                images=images,
                size=size,
                aspect_ratio=aspect_ratio,
                quality=quality,
                response_format=response_format,
                extra_body=extra_body,
                on_retry=on_retry,
            )

        return self._run(call)

    def generate_many(
        self,
        requests: Iterable[RequestLike],
        **options: Any,
    ) -> list[Any]:
        """Run a batch; blocking. See ``AsyncImageClient.generate_many``.

        Returns:
            A list aligned with ``requests``.
        """

        async def call() -> list[Any]:
            results: list[Any] = await self._async.generate_many(requests, **options)
            return results

        return self._run(call)

    def plan(
        self,
        requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
        *,
        prices: PriceArg = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> BatchPlan:
        """What a batch would do and cost, without sending anything; blocking.

        See ``AsyncImageClient.plan``.
        """

        async def call() -> BatchPlan:
            return await self._async.plan(requests, prices=prices, checkpoint=checkpoint)

        return self._run(call)

    def as_completed(
        self,
        requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
        *,
        concurrency: int | None = None,
        **options: Any,
    ) -> Iterator[BatchItem]:
        """Yield each settled request as it completes; blocking (see the async twin).

        Leaving the loop early cancels the requests still in flight.
        """
        self._ensure_open()
        portal = self._loop.portal
        send, receive = anyio.create_memory_object_stream[BatchItem](0)

        async def drive() -> None:
            # The context-manager form keeps the bound full; a bare async for
            # would run in waves (see AsyncImageClient.as_completed).
            async with (
                send,
                self._async.as_completed(requests, concurrency=concurrency, **options) as items,
            ):
                async for item in items:
                    await send.send(item)

        future = portal.start_task_soon(drive)
        try:
            while True:
                try:
                    yield portal.call(receive.receive)
                except anyio.EndOfStream:
                    break
            future.result()  # re-raise what ended the batch, if anything did
        finally:
            if not future.done():
                future.cancel()
                with contextlib.suppress(CancelledError, anyio.BrokenResourceError):
                    future.result(timeout=30)
            portal.call(receive.aclose)

    def read(self, image: GeneratedImage) -> bytes:
        """The bytes of a generated image; blocking. The API key is never sent."""
        return self._run(image.read)

    def save(self, image: GeneratedImage, path: str | os.PathLike[str]) -> Path:
        """Save a generated image (to a file, or into a directory) atomically; blocking."""
        return self._run(image.save, path)

    def save_all(self, response: ImageResponse, directory: str | os.PathLike[str]) -> list[Path]:
        """Save every image of a response into ``directory``; blocking."""
        return self._run(response.save_all, directory)
