"""The pacing of one client: server pauses, adaptive concurrency and rate limits together.

Before each attempt the client asks ``Pacer.start`` for a go-ahead, and tells
``Pacer.finish`` how the attempt ended. In order, an attempt waits for:

1. a pause the platform asked for (``Retry-After`` on a 429 or 503) on its
   model, which holds back every new attempt of that model client-wide;
2. a slot under its model's adaptive concurrency limit (when on);
3. its turn under the rate limits (client-wide and its model's), in this
   process or shared through Redis.

The time spent there is returned, so that the client can keep it out of its
deadlines. A client with none of these configured has no ``Pacer`` until the
platform first asks for a pause, so pacing costs nothing when unused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio
import attrs

from .._config import PAUSE_STATUSES
from .._exceptions import APIStatusError, APITimeoutError, RateLimitError
from .adaptive import AdaptiveLimit
from .local import LocalRates
from .rate import Rate

__all__ = ["PAUSE_STATUSES", "Pacer", "RateBackend", "Ticket"]

logger = logging.getLogger("linkai_images")


class RateBackend(Protocol):
    """Where rate limits are kept: in memory, or shared (Redis)."""

    async def acquire(self, model: str | None) -> None:
        """Wait for a start of ``model`` under every limit it falls under; take it."""

    async def aclose(self) -> None:
        """Release connections, if any."""


class _MemoryBackend:
    def __init__(self, rates: LocalRates) -> None:
        self._rates = rates

    async def acquire(self, model: str | None) -> None:
        await self._rates.acquire(model)

    async def aclose(self) -> None:
        pass


@attrs.frozen
class Ticket:
    """An attempt let through: its model, its adaptive round, the seconds it waited."""

    model: str | None
    round: int | None
    waited: float


class Pacer:
    """Pauses, adaptive limits and rate limits of one client.

    Args:
        max_concurrency: the client's bound, the ceiling of adaptive limits.
        rate: the client-wide rate, or ``None``.
        model_rates: a rate per model code.
        adaptive: keep an AIMD concurrency limit per model.
        backend: a shared rate backend instead of the in-memory one.
        max_pause: the longest ``Retry-After`` pause honoured, in seconds.
        skip_pauses: when it returns true, ``Retry-After`` pauses nothing
            (the retry module's testing switch).
    """

    def __init__(
        self,
        *,
        max_concurrency: int,
        rate: Rate | None = None,
        model_rates: Mapping[str, Rate] | None = None,
        adaptive: bool = False,
        backend: RateBackend | None = None,
        max_pause: float = 120.0,
        skip_pauses: Callable[[], bool] | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_pause = max_pause
        self._skip_pauses = skip_pauses
        if backend is None and (rate is not None or model_rates):
            backend = _MemoryBackend(LocalRates(rate, model_rates or {}))
        self._rates = backend
        self._adaptive: dict[str | None, AdaptiveLimit] | None = {} if adaptive else None
        self._pauses: dict[str | None, float] = {}

    def concurrency_limit(self, model: str | None) -> int:
        """The current adaptive limit of ``model`` (``max_concurrency`` when not adaptive)."""
        if self._adaptive is None:
            return self.max_concurrency
        return self._limit_of(model).limit

    def _limit_of(self, model: str | None) -> AdaptiveLimit:
        assert self._adaptive is not None
        limit = self._adaptive.get(model)
        if limit is None:
            limit = self._adaptive[model] = AdaptiveLimit(model, self.max_concurrency)
        return limit

    def pause(self, model: str | None, seconds: float) -> None:
        """Hold back new attempts of ``model`` for ``seconds`` (capped at ``max_pause``)."""
        seconds = min(seconds, self.max_pause)
        until = anyio.current_time() + seconds
        if until > self._pauses.get(model, float("-inf")):
            self._pauses[model] = until
            logger.info(
                "pausing new %s requests for %.2fs, as the platform asked (Retry-After)",
                model or "image",
                seconds,
            )

    async def _wait_pause(self, model: str | None) -> None:
        while True:
            until = self._pauses.get(model)
            if until is None:
                return
            now = anyio.current_time()
            if until <= now:
                del self._pauses[model]
                return
            await anyio.sleep(until - now)

    async def start(self, model: str | None) -> Ticket:
        """Wait until an attempt of ``model`` may start; cancelling the wait takes nothing."""
        begun = anyio.current_time()
        if self._pauses:
            await self._wait_pause(model)
        round_: int | None = None
        if self._adaptive is not None:
            round_ = await self._limit_of(model).acquire()
        try:
            if self._rates is not None:
                await self._rates.acquire(model)
            if self._pauses:  # the platform may have asked for a pause meanwhile
                await self._wait_pause(model)
        except BaseException:
            if round_ is not None:
                self._limit_of(model).release(round_, pushed_back=False, succeeded=False)
            raise
        return Ticket(model, round_, anyio.current_time() - begun)

    def finish(self, ticket: Ticket, error: BaseException | None) -> None:
        """Record how an attempt let through by ``start`` ended (``None``: it succeeded)."""
        if isinstance(error, APIStatusError):
            self.hint(ticket.model, error)
        if ticket.round is not None:
            pushed_back = isinstance(error, (RateLimitError, APITimeoutError))
            self._limit_of(ticket.model).release(
                ticket.round, pushed_back=pushed_back, succeeded=error is None
            )

    def hint(self, model: str | None, error: APIStatusError) -> None:
        """Pause ``model`` if ``error`` is a 429 or 503 carrying ``Retry-After``."""
        if error.status_code not in PAUSE_STATUSES or not error.retry_after:
            return
        if self._skip_pauses is None or not self._skip_pauses():
            self.pause(model, error.retry_after)

    async def aclose(self) -> None:
        """Release the shared backend's connections, if any."""
        if self._rates is not None:
            await self._rates.aclose()
