"""Adaptive concurrency: an AIMD limit on the requests of one model in flight.

The limit halves when the platform pushes back (a 429 or a timeout) and
grows by one after a window of successes, between 1 and ``max_concurrency``:

- It starts low (``INITIAL_LIMIT``) and, until the first push-back, grows by
  one per success (doubling each round trip), as TCP's slow start does.
- A push-back halves it, once per round: failures of requests launched
  before the last halving were caused by the old limit and change nothing.
- Below the level that last worked (one under the level that failed; half
  of it when slow start overshot), the window is one success, so a halving
  costs about one round trip.
- At or above it, the window is ``limit`` successes, doubled after each
  probe of that level that failed (at most ``MAX_PROBE_DOUBLINGS`` times),
  so a client settles just under the platform's capacity and probes it
  ever more rarely.

Each change is logged on the ``linkai_images`` logger.
"""

from __future__ import annotations

import collections
import logging

import anyio

__all__ = ["INITIAL_LIMIT", "MAX_PROBE_DOUBLINGS", "AdaptiveLimit"]

logger = logging.getLogger("linkai_images")

#: The limit a model starts at (or ``max_concurrency``, when lower).
INITIAL_LIMIT = 4
#: How many times the window above the last level that worked may double.
MAX_PROBE_DOUBLINGS = 6


class AdaptiveLimit:
    """The AIMD concurrency limit of one model, and the slots it hands out.

    ``acquire`` returns the round the slot was taken in; pass it back to
    ``release`` with what happened, so that only a failure of the current
    round halves the limit.

    Args:
        model: the model code, for the log lines.
        maximum: the highest limit (the client's ``max_concurrency``).
    """

    def __init__(self, model: str | None, maximum: int) -> None:
        self.model = model
        self.maximum = maximum
        self.limit = min(INITIAL_LIMIT, maximum)
        self.in_flight = 0
        self._round = 0
        self._successes = 0
        self._slow_start = True
        self._good: int | None = None
        self._failed_probes = 0
        self._waiters: collections.deque[anyio.Event] = collections.deque()

    async def acquire(self) -> int:
        """Wait for a slot; return the round it was taken in.

        Cancelled while waiting, it takes nothing (a slot handed over at that
        moment is passed on to the next waiter).
        """
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return self._round
        granted = anyio.Event()
        self._waiters.append(granted)
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():
                self._free()  # handed over as we were cancelled: hand it on
            else:
                self._waiters.remove(granted)
            raise
        return self._round

    def release(self, round_: int, *, pushed_back: bool, succeeded: bool) -> None:
        """Give a slot back and adapt the limit.

        Args:
            round_: what ``acquire`` returned.
            pushed_back: the request ended with a 429 or a timeout.
            succeeded: the request succeeded.
        """
        if pushed_back:
            if round_ == self._round:
                self._decrease()
        elif succeeded:
            self._count_success()
        self._free()

    def _free(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            self.in_flight += 1
            self._waiters.popleft().set()

    def _window(self) -> int:
        if self._slow_start or (self._good is not None and self.limit < self._good):
            return 1
        return self.limit << min(self._failed_probes, MAX_PROBE_DOUBLINGS)

    def _count_success(self) -> None:
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self._window():
            self._set(self.limit + 1, "a window of successes")

    def _decrease(self) -> None:
        failed = self.limit
        if self._good is not None and failed > self._good:
            self._failed_probes += 1
        # Slow start overshoots by the answers still on their way, as TCP's does:
        # half of where it stood is the level known to work (TCP's ssthresh).
        self._good = max(1, failed // 2 if self._slow_start else failed - 1)
        self._slow_start = False
        self._round += 1
        self._set(max(1, failed // 2), "the platform pushed back (429 or timeout)")

    def _set(self, limit: int, why: str) -> None:
        old, self.limit = self.limit, limit
        self._successes = 0
        self._wake()
        logger.info(
            "adaptive concurrency for %s: %d -> %d after %s",
            self.model or "requests",
            old,
            limit,
            why,
        )
