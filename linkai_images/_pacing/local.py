"""Request starts paced in one process: GCRA with no burst, fair between waiters.

The Generic Cell Rate Algorithm keeps, per limit, one number: the theoretical
arrival time (TAT) of the next start. A start is allowed once the clock has
reached the TAT of every limit it falls under (the client's and its model's);
it then moves each TAT one interval on. So starts are spread evenly, never
bunched at the edge of a window as a fixed or sliding window would allow.

Requests of one model wait in line (a FIFO ``anyio.Lock``): only the head of
each line watches the clock, and nothing is taken before it starts, so a task
cancelled while waiting leaves the limits exactly as they were.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from .rate import Rate

__all__ = ["LocalRates"]


class _Limit:
    """One GCRA limit: its spacing and the time the next start is due."""

    __slots__ = ("interval", "rate", "tat")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.interval = rate.interval
        self.tat = float("-inf")

    def take(self, now: float, waited: bool) -> None:
        # A waiter woken a little late by the event loop counts from the slot it
        # waited for, so that late wake-ups do not add up to a slower rate; a
        # start after an idle spell counts from now (no credit for idle time).
        late = now - self.tat
        base = self.tat if waited and 0 <= late < self.interval else now
        self.tat = base + self.interval


class LocalRates:
    """The client-wide rate and the per-model rates of one client, in memory.

    Args:
        rate: the client-wide rate, or ``None``.
        model_rates: a rate per model code.
    """

    def __init__(self, rate: Rate | None, model_rates: Mapping[str, Rate]) -> None:
        self._client = _Limit(rate) if rate is not None else None
        self._models = {model: _Limit(r) for model, r in model_rates.items()}
        self._lines: dict[str | None, anyio.Lock] = {}

    def limits(self, model: str | None) -> tuple[_Limit, ...]:
        """The limits a start of ``model`` falls under."""
        own = self._models.get(model) if model is not None else None
        return tuple(limit for limit in (self._client, own) if limit is not None)

    async def acquire(self, model: str | None) -> None:
        """Wait until a request of ``model`` may start, and count it as started.

        Cancelling the wait takes nothing.
        """
        limits = self.limits(model)
        if not limits:
            return
        line_key = model if model in self._models else None
        line = self._lines.get(line_key)
        if line is None:
            line = self._lines[line_key] = anyio.Lock()
        async with line:
            waited = False
            while True:
                due = max(limit.tat for limit in limits)
                now = anyio.current_time()
                if due <= now:
                    break
                waited = True
                await anyio.sleep(due - now)
            for limit in limits:
                limit.take(now, waited)
