"""The fake platform's limits: a request rate and a capacity, answered with 429 beyond either.

Both are per account (every model together), checked when a request
arrives, before the platform's rules:

- ``rate_limit`` (``"60/minute"``): a GCRA with a tolerance of one interval.
  On average no faster than the rate; a request may come up to one
  interval early (so two may arrive together after a quiet spell), which
  absorbs the jitter of a client that paces itself exactly.
- ``capacity``: generations running at once. A request is running from its
  arrival until its answer is due (the fake's latency), even if its client
  has gone away, as on a real platform.

A refused request spends nothing, and gets a ``Retry-After`` of the seconds
until it would be accepted, with decimals (``"0.25"``), so tests scaled down
to fractions of a second can honour it.
"""

from __future__ import annotations

import heapq

import attrs

from .._pacing.rate import Rate, parse_rate

__all__ = ["Limits", "Refusal", "retry_after_header"]


@attrs.frozen
class Refusal:
    """Why a request is refused, and the seconds until it would be accepted."""

    message: str
    retry_after: float


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` for ``seconds``: a whole number when it is one, else milliseconds."""
    text = f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")
    return text or "0"


class Limits:
    """The rate and the capacity of a fake account (not thread-safe: the fake locks).

    Args:
        rate_limit: ``"N/second"``, ``"N/minute"`` or ``"N/hour"``, or ``None``.
        capacity: requests generating at once, or ``None``.

    Raises:
        ValueError: a bad rate, or a capacity below 1.
    """

    def __init__(self, rate_limit: str | None, capacity: int | None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.rate: Rate | None = parse_rate(rate_limit) if rate_limit is not None else None
        self.capacity = capacity
        self._due = float("-inf")  # the GCRA's theoretical arrival time
        self._running: list[float] = []  # when each accepted generation ends (a heap)

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.rate is not None or self.capacity is not None

    def admit(self, now: float, duration: float) -> Refusal | None:
        """Accept a request arriving at ``now`` that will run ``duration`` seconds, or refuse it."""
        running = self._running
        while running and running[0] <= now:
            heapq.heappop(running)
        if self.rate is not None:
            interval = self.rate.interval
            if now < self._due - interval:
                return Refusal(
                    f"rate limit reached ({self.rate.text}); slow down",
                    self._due - interval - now,
                )
        if self.capacity is not None and len(running) >= self.capacity:
            return Refusal(
                f"too many requests in flight (capacity {self.capacity}); wait for one to finish",
                running[0] - now,
            )
        if self.rate is not None:
            self._due = max(self._due, now) + self.rate.interval
        if self.capacity is not None:
            heapq.heappush(running, now + duration)
        return None

    def clear(self) -> None:
        """Forget every start (as after a quiet spell)."""
        self._due = float("-inf")
        self._running.clear()
