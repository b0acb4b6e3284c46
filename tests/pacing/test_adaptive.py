"""The AIMD limit: halves on push-back once per round, grows after successes, stays in bounds."""

from __future__ import annotations

import logging

import anyio
import pytest

from linkai_images._pacing import AdaptiveLimit
from linkai_images._pacing.adaptive import INITIAL_LIMIT

pytestmark = pytest.mark.anyio


def grow(limit: AdaptiveLimit, successes: int) -> None:
    """Count ``successes`` requests that each took a slot and succeeded."""
    for _ in range(successes):
        limit.in_flight += 1
        limit.release(0, pushed_back=False, succeeded=True)


def push_back(limit: AdaptiveLimit) -> None:
    """One request of the current round answered 429."""
    limit.in_flight += 1
    limit.release(limit._round, pushed_back=True, succeeded=False)


def test_starts_low_and_slow_starts() -> None:
    """Until the first push-back the limit grows by one per success."""
    limit = AdaptiveLimit("m", 64)
    assert INITIAL_LIMIT == limit.limit
    grow(limit, 10)
    assert INITIAL_LIMIT + 10 == limit.limit


def test_push_back_halves_once_per_round() -> None:
    """Many 429s of requests launched in one round halve the limit once."""
    limit = AdaptiveLimit("m", 64)
    grow(limit, 12)  # 16
    rounds = []
    for _ in range(10):
        limit.in_flight += 1
        rounds.append(0)
    for round_ in rounds:
        limit.release(round_, pushed_back=True, succeeded=False)
    assert 8 == limit.limit


def test_never_above_max_nor_below_one() -> None:
    """The limit stays between 1 and max_concurrency."""
    limit = AdaptiveLimit("m", 6)
    grow(limit, 50)
    assert 6 == limit.limit
    for _ in range(10):
        limit.in_flight += 1
        limit.release(limit._round, pushed_back=True, succeeded=False)
    assert 1 == limit.limit


def test_regrows_fast_to_what_worked_then_probes_slowly() -> None:
    """After a halving it climbs back fast to the last good level, then waits a window."""
    limit = AdaptiveLimit("m", 64)
    grow(limit, 12)  # slow start up to 16
    push_back(limit)  # overshot: half of it, 8, is taken as what works
    assert 8 == limit.limit
    grow(limit, 8)  # a window of 8 successes: probe 9
    assert 9 == limit.limit
    push_back(limit)  # the probe failed: 8 worked
    assert 4 == limit.limit
    grow(limit, 4)
    assert 8 == limit.limit  # back in four successes
    grow(limit, 15)
    assert 8 == limit.limit  # the window above it doubled after the failed probe
    grow(limit, 1)
    assert 9 == limit.limit


def test_changes_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Each change of the limit is a log line on the linkai_images logger."""
    limit = AdaptiveLimit("gpt-image-2", 64)
    with caplog.at_level(logging.INFO, logger="linkai_images"):
        grow(limit, 1)
    assert ["adaptive concurrency for gpt-image-2: 4 -> 5 after a window of successes"] == [
        r.getMessage() for r in caplog.records
    ]


async def test_waiters_get_slots_in_order_and_cancel_cleanly() -> None:
    """Beyond the limit acquire waits; a cancelled waiter takes no slot."""
    limit = AdaptiveLimit("m", 1)
    got: list[str] = []
    round_ = await limit.acquire()

    async def take(name: str) -> None:
        await limit.acquire()
        got.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(take, "a")
        await anyio.sleep(0.01)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await take("cancelled")
        tg.start_soon(take, "b")
        await anyio.sleep(0.01)
        limit.release(round_, pushed_back=False, succeeded=True)
        await anyio.sleep(0.01)
        assert ["a"] == got
        limit.release(round_, pushed_back=False, succeeded=True)
    assert (["a", "b"], 1) == (got, limit.in_flight)
