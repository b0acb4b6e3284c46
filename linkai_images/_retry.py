"""Where a retry is decided: what is retried, how long to wait, when to stop.

Shaped like stamina on tenacity: an explicit set of retried failures, bounds on
attempts AND total time, exponential backoff with full jitter, ``Retry-After``
honoured through the wait, the last error re-raised as itself, and every retry
reported as a frozen record (logged on the ``linkai_images`` logger and passed
to an optional hook).

Generation is billed. A request that may have reached the platform (a read
timeout, a connection dropped after sending) is *not* retried unless
``retry_unsent_only=False``: the platform may still finish it and charge for it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

import anyio
import attrs

from ._exceptions import APIConnectionError, APIStatusError, LinkAIError

if TYPE_CHECKING:
    import tenacity

__all__ = [
    "DEFAULT_BUDGET_WINDOW",
    "DEFAULT_MIN_RETRIES_PER_SECOND",
    "DEFAULT_RETRY_RATIO",
    "DEFAULT_RETRY_STATUSES",
    "RetryBudget",
    "RetryEvent",
    "RetryHook",
    "RetryPolicy",
    "call_with_retries",
    "is_testing",
    "set_testing",
]

logger = logging.getLogger("linkai_images")

T = TypeVar("T")

#: Statuses retried by default: transient upstream failures and rate limits.
DEFAULT_RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _status_set(statuses: Iterable[int]) -> frozenset[int]:
    return frozenset(statuses)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """What is retried and for how long.

    Attributes:
        max_attempts: attempts in all, the first included (``max_retries + 1``).
        timeout: seconds after the first attempt started after which no new
            attempt begins (``None``: no time bound).
        wait_initial: the backoff ceiling of the first retry, in seconds.
        wait_max: the largest backoff ceiling, in seconds.
        wait_exp_base: how fast the ceiling grows per retry.
        retry_statuses: HTTP statuses that are retried.
        retry_unsent_only: retry a connection failure only when the request
            never left (``True``, the default: no double billing). ``False``
            also retries read timeouts and connections dropped after sending,
            which the platform may still generate and bill.
        max_retry_after: the longest ``Retry-After`` honoured, in seconds;
            a longer one ends the retries with the error.
    """

    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    timeout: float | None = 900.0
    wait_initial: float = 1.0
    wait_max: float = 30.0
    wait_exp_base: float = 2.0
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=_status_set
    )
    retry_unsent_only: bool = True
    max_retry_after: float = 120.0

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a failure this policy retries."""
        if isinstance(exc, APIStatusError):
            if exc.status_code not in self.retry_statuses:
                return False
            return exc.retry_after is None or exc.retry_after <= self.max_retry_after
        if isinstance(exc, APIConnectionError):
            return not (exc.request_sent and self.retry_unsent_only)
        return False

    def backoff(self, retry_number: int, exc: BaseException) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based) after ``exc``.

        Full jitter: uniform in ``[0, ceiling]``; never less than a
        ``Retry-After`` the server sent.
        """
        if _testing.active:
            return 0.0
        ceiling = min(self.wait_max, self.wait_initial * self.wait_exp_base ** (retry_number - 1))
        wait = random.uniform(0.0, ceiling)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


@attrs.frozen(kw_only=True)
class RetryEvent:
    """One retry about to happen.

    Attributes:
        attempt: the attempt that just failed (1 = the first).
        wait: seconds slept before the next attempt.
        cause: the error of the failed attempt.
        elapsed: seconds since the first attempt started.
        model: the model of the request.
        prompt: the request's prompt.
    """

    attempt: int
    wait: float
    cause: BaseException
    elapsed: float
    model: str | None = None
    prompt: str | None = None


RetryHook = Callable[[RetryEvent], object]


#: The share of recent healthy answers that retries may add (``RetryBudget.retry_ratio``).
DEFAULT_RETRY_RATIO = 0.3
#: Retries allowed per second whatever the traffic (``RetryBudget.min_retries_per_second``).
DEFAULT_MIN_RETRIES_PER_SECOND = 10.0
#: Seconds over which answers and retries are counted (``RetryBudget.window``).
DEFAULT_BUDGET_WINDOW = 10.0

_SLOTS = 10  # the window slides in tenths: an entry expires between 0.9 and 1.0 windows old
_UNIT = 1000  # one retry, in the integer units the slots count (float sums would drift)


@attrs.define(kw_only=True)
class RetryBudget:
    """A client-wide retry quota, so an outage does not multiply the traffic.

    A sliding-window budget after Finagle's ``RetryBudget``: over the last
    ``window`` seconds, the retries made may not exceed ``retry_ratio`` times
    the healthy answers received, plus ``min_retries_per_second`` per second.
    A healthy answer is a success, or an error the platform meant and that is
    not retried (a 400, a 409, ...); a 503 is not one. Only a retry that is
    about to be made spends budget: the first attempt of a call never does,
    nor does the failure of a call's last attempt.

    Why these defaults:

    - ``retry_ratio=0.3``: with the default three attempts, random failures
      need ``p + p**2`` retries per request, so up to about 23% of requests
      failing at random, every retry goes through (``p + p**2 <= 0.3 *
      (1 - p**3)``). Above that the share caps what retries add.
    - ``min_retries_per_second=10`` over ``window=10``: 100 retries in any
      10 seconds whatever the traffic, so a client that has just started, or
      that makes few calls (image generation is slow), still retries; and a
      batch at 25% random failures keeps its three attempts.
    - In a total outage there are no healthy answers, so only that floor is
      left: 500 requests failing at once make at most 600 attempts (1.2 per
      request) instead of 1,500; over a long outage, at most 10 retries a
      second. As soon as answers come back (a request succeeding, say, 90%
      of the time), each one earns back 0.3 of a retry: after four of them a
      retry may start again.

    Finagle counts every request, not healthy answers; then a total outage
    still pays the full share (1.2x plus the floor, 1.4x for 500 requests at
    once with these numbers), and a share large enough for ordinary noise
    (20% of failures needs 24%) makes outages cost more than the noise.

    Args:
        retry_ratio: retries allowed per healthy answer in the window
            (0 or more; ``0.3`` means 3 retries per 10 answers).
        min_retries_per_second: retries allowed per second on top, whatever
            the traffic (0 or more).
        window: the seconds over which answers and retries count (more than 0).
        clock: monotonic seconds; tests inject a fixed or stepped clock.

    Raises:
        ValueError: a negative ratio or floor, or a window that is not positive.
    """

    retry_ratio: float = attrs.field(
        default=DEFAULT_RETRY_RATIO, validator=attrs.validators.ge(0.0)
    )
    min_retries_per_second: float = attrs.field(
        default=DEFAULT_MIN_RETRIES_PER_SECOND, validator=attrs.validators.ge(0.0)
    )
    window: float = attrs.field(default=DEFAULT_BUDGET_WINDOW, validator=attrs.validators.gt(0.0))
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    _deposit: int = attrs.field(init=False, repr=False)
    _reserve: int = attrs.field(init=False, repr=False)
    _slots: list[int] = attrs.field(init=False, repr=False, factory=lambda: [0] * _SLOTS)
    _current: int = attrs.field(init=False, repr=False, default=0)
    _slot_started: float = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        self._deposit = round(self.retry_ratio * _UNIT)
        self._reserve = round(self.min_retries_per_second * self.window * _UNIT)
        self._slot_started = self.clock()

    @property
    def available(self) -> int:
        """The retries that may start now."""
        with self._lock:
            self._slide()
            return max(0, self._balance() // _UNIT)

    def deposit(self) -> None:
        """Count a healthy answer: it earns ``retry_ratio`` of a retry for ``window`` seconds."""
        with self._lock:
            self._slide()
            self._slots[self._current] += self._deposit

    def try_spend(self) -> bool:
        """Spend one retry if the budget has one; ``False`` (and nothing spent) if not."""
        with self._lock:
            self._slide()
            if self._balance() < _UNIT:
                return False
            self._slots[self._current] -= _UNIT
            return True

    def _balance(self) -> int:
        return self._reserve + sum(self._slots)

    def _slide(self) -> None:
        """Forget the slots older than the window."""
        slot = self.window / _SLOTS
        passed = int((self.clock() - self._slot_started) // slot)
        if passed <= 0:  # the same slot (or a clock that went back)
            return
        for _ in range(min(passed, _SLOTS)):
            self._current = (self._current + 1) % _SLOTS
            self._slots[self._current] = 0
        self._slot_started += passed * slot


class _Testing:
    # Process-wide, not per thread: the blocking client's loop thread and a test
    # server's thread must see the switch their test set.
    active = False


_testing = _Testing()


def is_testing() -> bool:
    """Whether ``set_testing`` has made waits zero."""
    return _testing.active


def set_testing(testing: bool = True) -> contextlib.AbstractContextManager[None]:
    """Make retry waits zero (``True``) or real (``False``), for tests.

    Attempts are still counted and bounded; only the sleeping goes (the
    client-wide pauses a ``Retry-After`` asks for go too; rate limits stay,
    being what you configured). The switch
    is process-wide (every thread and client) and takes effect at once; the
    returned context manager restores the previous setting on exit::

        with linkai_images.set_testing():
            ...  # 503s are retried without sleeping

    Returns:
        A context manager that restores the previous setting.
    """
    previous = _testing.active
    _testing.active = testing

    @contextlib.contextmanager
    def restore() -> Iterator[None]:
        try:
            yield
        finally:
            _testing.active = previous

    return restore()


class _Wait:
    """The policy's backoff, as tenacity asks for it (any callable will do)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        assert exc is not None  # only failed attempts are retried
        return self._policy.backoff(retry_state.attempt_number, exc)


def _set_attempts(exc: LinkAIError, attempts: int) -> None:
    if hasattr(exc, "attempts"):  # the errors of a sent request count their attempts
        exc.attempts = attempts


class _StopBeforeDeadline:
    """tenacity's ``stop_before_delay``, timed from when the *first* attempt started.

    The first attempt runs before tenacity is involved (see ``call_with_retries``),
    so tenacity's own clock would start one attempt late.
    """

    def __init__(
        self, timeout: float, started: float, paused: Callable[[], float] | None = None
    ) -> None:
        self._timeout = timeout
        self._started = started
        self._paused = paused

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        elapsed = time.monotonic() - self._started
        if self._paused is not None:
            elapsed -= self._paused()  # waiting for the rate limiter is not retrying
        return elapsed + retry_state.upcoming_sleep >= self._timeout


class _StopWhenBudgetSpent:
    """Stop when the client's ``RetryBudget`` has no retry left; spend one when it has."""

    def __init__(self, budget: RetryBudget, model: str | None) -> None:
        self._budget = budget
        self._model = model

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if self._budget.try_spend():
            return False
        logger.info(
            "not retrying %s request after attempt %d failed: the client's retry budget "
            "is spent (too many recent failures)",
            self._model or "image",
            retry_state.attempt_number,
        )
        return True


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    budget: RetryBudget | None = None,
    on_retry: RetryHook | None = None,
    model: str | None = None,
    prompt: str | None = None,
    paused: Callable[[], float] | None = None,
) -> tuple[T, int]:
    """Run ``attempt`` under ``policy`` and return its result and the attempts made.

    The first attempt is made directly: most calls succeed at once, and a
    tenacity loop costs more CPU than the rest of the client's own work on a
    call. Only a failure the policy retries enters tenacity, which starts by
    replaying that failure, so stops, waits, the budget and the hooks see
    exactly the attempts made. ``paused`` returns the seconds the attempts
    spent waiting for the client's pacing, which the policy's ``timeout``
    leaves out.

    Raises:
        LinkAIError: the last attempt's error, itself (never tenacity's
            ``RetryError``), with ``attempts`` set on it.
    """
    started = time.monotonic()
    try:
        result = await attempt()
    except LinkAIError as exc:
        if not policy.is_retryable(exc):
            _set_attempts(exc, 1)
            _settle(budget, exc)
            raise
        failure = exc
    else:
        if budget is not None:
            budget.deposit()
        return result, 1
    return await _retry(
        attempt,
        policy,
        failure,
        started,
        budget=budget,
        on_retry=on_retry,
        model=model,
        prompt=prompt,
        paused=paused,
    )


async def _retry(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    failure: LinkAIError,
    started: float,
    *,
    budget: RetryBudget | None,
    on_retry: RetryHook | None,
    model: str | None,
    prompt: str | None,
    paused: Callable[[], float] | None = None,
) -> tuple[T, int]:
    """The retries after a first attempt that failed with ``failure``, under tenacity.

    Apart from ``call_with_retries`` so that its fast path, one attempt that
    succeeds, creates none of the closures and cells needed here.
    """
    first_failure: LinkAIError | None = failure

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        wait = state.next_action.sleep if state.next_action else 0.0
        event = RetryEvent(
            attempt=state.attempt_number,
            wait=wait,
            cause=exc,
            elapsed=time.monotonic() - started,
            model=model,
            prompt=prompt,
        )
        logger.warning(
            "retrying %s request after attempt %d failed (%s: %s); waiting %.2fs",
            model or "image",
            event.attempt,
            type(exc).__name__,
            exc,
            wait,
        )
        if on_retry is not None:
            on_retry(event)

    # Imported here, at the first retry: a call whose first attempt succeeds (most
    # of them) never needs tenacity, and importing it costs more than importing httpx.
    import tenacity

    stops: list[Callable[[tenacity.RetryCallState], bool]] = [
        tenacity.stop_after_attempt(policy.max_attempts)
    ]
    if policy.timeout is not None:
        stops.append(_StopBeforeDeadline(policy.timeout, started, paused))
    if budget is not None:
        # Last: the stops are asked in order up to the first yes, so the budget is
        # asked (and spent) only for a retry that is otherwise going ahead.
        stops.append(_StopWhenBudgetSpent(budget, model))
    retrying = tenacity.AsyncRetrying(
        stop=lambda state: any(stop(state) for stop in stops),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(policy.is_retryable),
        before_sleep=before_sleep,
        sleep=anyio.sleep,
        reraise=True,
    )
    attempts = 0
    try:
        async for try_ in retrying:
            with try_:
                attempts += 1
                if first_failure is not None:
                    replayed, first_failure = first_failure, None
                    raise replayed
                result = await attempt()
    except LinkAIError as exc:
        _set_attempts(exc, attempts)
        if not policy.is_retryable(exc):
            _settle(budget, exc)
        raise
    if budget is not None:
        budget.deposit()
    return result, attempts


def _settle(budget: RetryBudget | None, exc: LinkAIError) -> None:
    """Count a call's final, non-retried error in the budget when the platform meant it."""
    if budget is not None and isinstance(exc, APIStatusError):
        budget.deposit()  # a 400 or a 409 is an answer from a working platform
