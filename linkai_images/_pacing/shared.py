"""Rate limits shared by every process that names the same Redis (``limiter_url``).

Built on pyrate-limiter's GCRA (its ``RedisStateStore`` runs the algorithm
as one atomic Lua script per check, one small hash per limit, expiring when
idle) over redis-py: the same smooth spacing as the in-memory limiter
(``burst=1``: one start per interval, no burst at a window edge), now across
processes and machines. The ``limits`` package was the other candidate; its
strategies are fixed and moving windows, which let a whole window's worth
start at once.

redis-py's sync client runs in a worker thread (``anyio.to_thread``), so the
same code serves asyncio and trio; a check is one short round trip. Within a
process, requests of one model wait in line as in ``local.py``, so only the
head of each line asks Redis.

Timestamps are this machine's wall clock (pyrate-limiter's choice for shared
state): machines sharing a limiter need synchronised clocks (NTP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread

from .._config import mask_url
from .._exceptions import LimiterError
from .local import LocalRates
from .rate import Rate

__all__ = ["RedisRates"]

logger = logging.getLogger("linkai_images")

#: Seconds to connect to Redis, and to wait for one answer.
REDIS_TIMEOUT = 5.0


def _import() -> tuple[Any, Any]:
    try:
        import pyrate_limiter
        import redis
    except ImportError as exc:
        raise LimiterError(
            f"limiter_url needs the redis extra ({exc.name} is not installed): "
            "pip install 'linkai-images[redis]'"
        ) from exc
    return pyrate_limiter, redis


class _SharedLimit:
    """One rate kept in Redis under one key."""

    def __init__(self, pyrate: Any, client: Any, key: str, rate: Rate) -> None:
        self.rate = rate
        self.key = key
        self._algorithm = pyrate.GCRA()
        self._rates = [pyrate.Rate(rate.count, round(rate.period * 1000), burst=1)]
        self._interval_ms = rate.interval * 1000
        self._store = pyrate.RedisStateStore(client, key)

    def check(self, due_ms: int | None) -> int | None:
        """Take a start if one is free now; else when one will be, in ms (blocking I/O).

        ``due_ms`` is the time a previous ``check`` said to come back at. A
        waiter woken a little late asks as of that time, so that late
        wake-ups do not add up to a slower rate (as in ``local.py``); the
        GCRA still admits it only if the start is free as of then.
        """
        now_ms = time.time_ns() // 1_000_000
        if due_ms is not None and 0 <= now_ms - due_ms < self._interval_ms:
            now_ms = due_ms
        decision = self._store.check(self._algorithm, self._rates, now_ms, 1)
        if decision.allowed:
            return None
        return now_ms + max(decision.retry_after_ms or 1, 1)


class RedisRates:
    """The client-wide and per-model rates of a client, kept in Redis.

    Args:
        url: the Redis URL.
        rate: the client-wide rate, or ``None``.
        model_rates: a rate per model code.
        prefix: the prefix of the keys (``{prefix}:rate:client``,
            ``{prefix}:rate:model:{model}``).
        fallback: when Redis fails, pace in this process alone (logged)
            instead of raising ``LimiterError``.

    Raises:
        LimiterError: the ``redis`` extra is not installed.
    """

    def __init__(
        self,
        url: str,
        rate: Rate | None,
        model_rates: Mapping[str, Rate],
        *,
        prefix: str,
        fallback: bool = False,
    ) -> None:
        pyrate, redis = _import()
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        self._client_limit = (
            _SharedLimit(pyrate, self._client, f"{prefix}:rate:client", rate) if rate else None
        )
        self._model_limits = {
            model: _SharedLimit(pyrate, self._client, f"{prefix}:rate:model:{model}", r)
            for model, r in model_rates.items()
        }
        self._fallback = LocalRates(rate, model_rates) if fallback else None
        self._failed = False
        self._lines: dict[str | None, anyio.Lock] = {}

    def __repr__(self) -> str:
        return f"RedisRates({mask_url(self.url)!r})"

    async def acquire(self, model: str | None) -> None:
        """Wait until a start of ``model`` is free under each shared limit; take it.

        The slowest limit is taken first: a start taken under one limit while
        waiting for another is spent early, and the faster limit's wait is
        the shorter one.

        Raises:
            LimiterError: Redis failed (and no fallback was asked for).
        """
        if self._failed and self._fallback is not None:
            await self._fallback.acquire(model)
            return
        own = self._model_limits.get(model) if model is not None else None
        limits = [limit for limit in (self._client_limit, own) if limit is not None]
        if not limits:
            return
        limits.sort(key=lambda limit: limit.rate.interval, reverse=True)
        line_key = model if own is not None else None
        line = self._lines.get(line_key)
        if line is None:
            line = self._lines[line_key] = anyio.Lock()
        async with line:
            for limit in limits:
                due: int | None = None
                while True:
                    try:
                        due = await anyio.to_thread.run_sync(limit.check, due)
                    except self._errors as exc:
                        await self._failure(exc, model)
                        return
                    if due is None:
                        break
                    await anyio.sleep(max(0.0, due / 1000 - time.time()))

    async def _failure(self, exc: BaseException, model: str | None) -> None:
        where = mask_url(self.url)
        if self._fallback is None:
            raise LimiterError(
                f"the shared rate limiter at {where} failed ({type(exc).__name__}: {exc}); "
                "nothing was sent. Check that Redis runs there, or pass "
                "limiter_fallback=True to pace each process on its own while it is down"
            ) from exc
        if not self._failed:
            self._failed = True
            logger.warning(
                "the shared rate limiter at %s failed (%s: %s); pacing this process on its "
                "own from now on (limiter_fallback=True)",
                where,
                type(exc).__name__,
                exc,
            )
        await self._fallback.acquire(model)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await anyio.to_thread.run_sync(self._client.close)
