"""The retry decision: what is retried, how long it waits, when it stops, what it reports."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import httpx
import pytest

from linkai_images import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    ServiceUnavailableError,
    set_testing,
)
from linkai_images._exceptions import status_error_class
from linkai_images._retry import call_with_retries

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


def status_error(code: int, retry_after: float | None = None) -> APIStatusError:
    request = httpx.Request("POST", "http://api.test/v1/images/generations")
    response = httpx.Response(code, request=request)
    return status_error_class(code)("boom", response=response, retry_after=retry_after)


def failing(errors: list[Exception], result: str = "ok") -> Callable[[], object]:
    """An attempt that raises the given errors in turn, then returns ``result``."""
    calls = iter(errors)

    async def attempt() -> str:
        error = next(calls, None)
        if error is not None:
            raise error
        return result

    return attempt


async def test_503_is_retried_until_success_and_attempts_counted() -> None:
    """Two 503s then a success: three attempts, the result returned."""
    attempt = failing([status_error(503), status_error(503)])
    assert ("ok", 3) == await call_with_retries(attempt, RetryPolicy(max_attempts=3))


async def test_max_attempts_bounds_and_last_error_is_reraised_as_itself() -> None:
    """Out of attempts, the last APIStatusError escapes (not RetryError) with attempts set."""
    errors = [status_error(503) for _ in range(5)]
    with pytest.raises(ServiceUnavailableError) as info:
        await call_with_retries(failing(errors), RetryPolicy(max_attempts=3))
    assert info.value is errors[2]
    assert 3 == info.value.attempts


@pytest.mark.parametrize("code", [400, 401, 402, 406, 409])
async def test_client_errors_are_never_retried(code: int) -> None:
    """A 4xx other than 429 fails at once."""
    with pytest.raises(APIStatusError) as info:
        await call_with_retries(failing([status_error(code)]), RetryPolicy(max_attempts=5))
    assert 1 == info.value.attempts


async def test_429_and_gateway_errors_are_retried() -> None:
    """429, 502 and 504 are in the default retried set."""
    errors = [status_error(429), status_error(502), status_error(504)]
    assert ("ok", 4) == await call_with_retries(failing(errors), RetryPolicy(max_attempts=4))


async def test_connection_failure_before_sending_is_retried() -> None:
    """A connect error (nothing left the machine) is safe to retry."""
    unsent = APIConnectionError("refused", request_sent=False)
    assert ("ok", 2) == await call_with_retries(failing([unsent]), RetryPolicy())


async def test_failure_after_sending_is_not_retried_by_default() -> None:
    """A read timeout may be billed by the platform: no retry unless opted in."""
    sent = APITimeoutError("read timeout", request_sent=True)
    with pytest.raises(APITimeoutError) as info:
        await call_with_retries(failing([sent]), RetryPolicy(max_attempts=5))
    assert 1 == info.value.attempts
    opted_in = RetryPolicy(retry_unsent_only=False)
    assert ("ok", 2) == await call_with_retries(failing([sent]), opted_in)


async def test_each_retry_is_reported_to_the_hook_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The hook gets a frozen RetryEvent per retry; the logger says what happened."""
    events: list[RetryEvent] = []
    caplog.set_level(logging.WARNING, logger="linkai_images")
    first = status_error(503)
    await call_with_retries(
        failing([first]), RetryPolicy(), on_retry=events.append, model="gpt-image-2", prompt="fox"
    )
    assert 1 == len(events)
    assert (1, first, "gpt-image-2", "fox") == (
        events[0].attempt,
        events[0].cause,
        events[0].model,
        events[0].prompt,
    )
    assert "retrying gpt-image-2 request after attempt 1 failed" in caplog.text


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    """Waits stay within [0, min(max, initial * base^(n-1))]."""
    with set_testing(False):
        policy = RetryPolicy(wait_initial=1.0, wait_max=5.0)
        for retry in range(1, 8):
            ceiling = min(5.0, 2.0 ** (retry - 1))
            waits = [policy.backoff(retry, status_error(503)) for _ in range(50)]
            assert all(0.0 <= w <= ceiling for w in waits)
            assert len(set(waits)) > 1


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    """A Retry-After sets the least wait; one beyond the cap stops the retries."""
    with set_testing(False):
        policy = RetryPolicy(wait_initial=0.01, max_retry_after=10.0)
        assert policy.backoff(1, status_error(503, retry_after=4.0)) >= 4.0
        assert not policy.is_retryable(status_error(503, retry_after=11.0))


def test_testing_switch_zeroes_waits_and_restores() -> None:
    """set_testing() makes backoff 0 and its context manager restores the previous mode."""
    policy = RetryPolicy(wait_initial=3.0)
    with set_testing(False):
        with set_testing(True):
            assert 0.0 == policy.backoff(2, status_error(503, retry_after=9.0))
        assert policy.backoff(1, status_error(503, retry_after=9.0)) >= 9.0


async def test_total_time_bound_stops_before_a_wait_that_would_pass_it() -> None:
    """No retry starts when its backoff would end past the policy's timeout."""
    with set_testing(False):
        policy = RetryPolicy(max_attempts=10, timeout=1.0, wait_initial=5.0)
        with pytest.raises(ServiceUnavailableError) as info:
            await call_with_retries(failing([status_error(503, retry_after=5.0)]), policy)
    assert 1 == info.value.attempts


async def test_total_time_bound_counts_the_first_attempt() -> None:
    """The policy's timeout runs from the first attempt's start, not from the first retry."""

    async def slow_503() -> str:
        await anyio.sleep(0.3)
        raise status_error(503, retry_after=0.25)

    with set_testing(False):
        # 0.3 s spent + a 0.25 s wait passes 0.5 s: no retry, though the wait alone fits.
        policy = RetryPolicy(max_attempts=5, timeout=0.5, wait_initial=0.01)
        with pytest.raises(ServiceUnavailableError) as info:
            await call_with_retries(slow_503, policy)
    assert 1 == info.value.attempts


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_only_retries_made_spend_the_budget() -> None:
    """Three failed attempts spend two retries: the exhausted last attempt spends nothing."""
    budget = RetryBudget(retry_ratio=0.0, min_retries_per_second=0.5, window=10, clock=Clock())
    assert 5 == budget.available
    with pytest.raises(ServiceUnavailableError) as info:
        await call_with_retries(
            failing([status_error(503)] * 3), RetryPolicy(max_attempts=3), budget=budget
        )
    assert 3 == info.value.attempts
    assert 3 == budget.available


async def test_a_spent_budget_lets_first_attempts_through_but_no_retry() -> None:
    """With no retry left a 503 fails after one attempt; a failed try spends nothing."""
    budget = RetryBudget(retry_ratio=0.0, min_retries_per_second=0.1, window=10, clock=Clock())
    policy = RetryPolicy(max_attempts=3)
    attempts = []
    for _ in range(3):
        with pytest.raises(ServiceUnavailableError) as info:
            await call_with_retries(failing([status_error(503)] * 3), policy, budget=budget)
        attempts.append(info.value.attempts)
    assert [2, 1, 1] == attempts
    assert 0 == budget.available


async def test_healthy_answers_earn_retries_and_503s_do_not() -> None:
    """Successes and a 400 earn retry_ratio each; a 503 the policy gave up on earns nothing."""
    budget = RetryBudget(retry_ratio=0.5, min_retries_per_second=0.0, clock=Clock())
    policy = RetryPolicy(max_attempts=1)
    await call_with_retries(failing([]), policy, budget=budget)
    with pytest.raises(BadRequestError):
        await call_with_retries(failing([status_error(400)]), policy, budget=budget)
    with pytest.raises(ServiceUnavailableError):
        await call_with_retries(failing([status_error(503)]), policy, budget=budget)
    assert 1 == budget.available
    retried = await call_with_retries(
        failing([status_error(503)]), RetryPolicy(max_attempts=3), budget=budget
    )
    assert ("ok", 2) == retried
    assert 0 == budget.available  # the retry spent 1, its success earned back 0.5


def test_answers_and_retries_leave_the_window() -> None:
    """A deposit counts for one window; a retry spent counts against it for one window too."""
    clock = Clock()
    budget = RetryBudget(retry_ratio=1.0, min_retries_per_second=0.0, window=10, clock=clock)
    budget.deposit()
    clock.now = 5.0
    budget.deposit()
    assert 2 == budget.available
    clock.now = 10.5  # the first deposit is out of the window
    assert 1 == budget.available
    assert budget.try_spend()
    assert not budget.try_spend()
    clock.now = 15.5  # the second deposit is out, the retry spent at 10.5 still in
    assert 0 == budget.available
    budget.deposit()
    assert 0 == budget.available  # it pays for the retry still in the window
    clock.now = 100.0  # everything is out
    assert 0 == budget.available
    budget.deposit()
    assert 1 == budget.available


def test_the_floor_allows_retries_per_second_of_window() -> None:
    """min_retries_per_second over the window: 2/s over 5 s is 10 retries in any 5 s."""
    clock = Clock()
    budget = RetryBudget(retry_ratio=0.0, min_retries_per_second=2, window=5, clock=clock)
    assert [True] * 10 + [False] == [budget.try_spend() for _ in range(11)]
    clock.now = 5.0
    assert 10 == budget.available


def test_budget_defaults_are_the_documented_numbers() -> None:
    """30% of healthy answers plus 10 retries a second, over 10 seconds."""
    budget = RetryBudget(clock=Clock())
    assert (0.3, 10.0, 10.0) == (
        budget.retry_ratio,
        budget.min_retries_per_second,
        budget.window,
    )
    assert 100 == budget.available


@pytest.mark.parametrize(
    "options",
    [{"retry_ratio": -0.1}, {"min_retries_per_second": -1}, {"window": 0}],
)
def test_budget_refuses_negative_shares_and_empty_windows(options: dict[str, float]) -> None:
    """A negative ratio or floor, or a window of no time, is a ValueError at construction."""
    (name,) = options
    with pytest.raises(ValueError, match=name):
        RetryBudget(**options)  # type: ignore[arg-type]


def test_max_attempts_must_be_positive() -> None:
    """A policy with zero attempts is refused at construction."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_bad_request_is_not_retryable() -> None:
    """is_retryable is False for a 400 and for non-SDK errors."""
    policy = RetryPolicy()
    assert not policy.is_retryable(status_error(400))
    assert isinstance(status_error(400), BadRequestError)
    assert not policy.is_retryable(RuntimeError("x"))
