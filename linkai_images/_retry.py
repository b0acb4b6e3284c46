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
from typing import TypeVar

import anyio
import attrs
import tenacity

from ._exceptions import APIConnectionError, APIStatusError, LinkAIError

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "RetryBudget",
    "RetryEvent",
    "RetryHook",
    "RetryPolicy",
    "call_with_retries",
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


@attrs.define
class RetryBudget:
    """A client-wide retry quota, so an outage does not multiply traffic.

    gRPC retry throttling: tokens start full; every retryable failure takes
    one, every success gives back ``token_ratio``; retries are allowed only
    while more than half the tokens remain. Under a storm of failures the
    budget drains and each request gets one attempt; as successes return the
    budget refills and retries resume.

    Attributes:
        max_tokens: the size of the bucket.
        token_ratio: tokens returned per success.
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.1
    _tokens: float = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.max_tokens

    @property
    def tokens(self) -> float:
        """The tokens left."""
        return self._tokens

    def on_failure(self) -> None:
        """Take a token for a retryable failure."""
        with self._lock:
            self._tokens = max(0.0, self._tokens - 1.0)

    def on_success(self) -> None:
        """Give back part of a token for a success."""
        with self._lock:
            self._tokens = min(self.max_tokens, self._tokens + self.token_ratio)

    def allows_retry(self) -> bool:
        """Whether a retry may start now."""
        return self._tokens > self.max_tokens / 2


class _Testing:
    # Process-wide, not per thread: the blocking client's loop thread and a test
    # server's thread must see the switch their test set.
    active = False


_testing = _Testing()


def set_testing(testing: bool = True) -> contextlib.AbstractContextManager[None]:
    """Make retry waits zero (``True``) or real (``False``), for tests.

    Attempts are still counted and bounded; only the sleeping goes. The switch
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


class _Wait(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        assert exc is not None  # only failed attempts are retried
        return self._policy.backoff(retry_state.attempt_number, exc)


def _set_attempts(exc: LinkAIError, attempts: int) -> None:
    if hasattr(exc, "attempts"):  # the errors of a sent request count their attempts
        exc.attempts = attempts


class _StopBeforeDeadline(tenacity.stop.stop_base):
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
            raise
        failure = exc
    else:
        if budget is not None:
            budget.on_success()
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

    def should_retry(exc: BaseException) -> bool:
        if not policy.is_retryable(exc):
            return False
        if budget is None:
            return True
        budget.on_failure()
        return budget.allows_retry()

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

    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.max_attempts)
    if policy.timeout is not None:
        stop = stop | _StopBeforeDeadline(policy.timeout, started, paused)
    retrying = tenacity.AsyncRetrying(
        stop=stop,
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(should_retry),
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
        raise
    if budget is not None:
        budget.on_success()
    return result, attempts
