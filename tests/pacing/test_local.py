"""The in-memory limiter: starts spread one interval apart, fair, cancel-safe."""

from __future__ import annotations

import anyio
import pytest

from linkai_images._pacing import LocalRates, parse_rate

pytestmark = pytest.mark.anyio


async def starts(rates: LocalRates, models: list[str]) -> list[tuple[str, float]]:
    """Acquire once per model in ``models``, all at once; the start times by model."""
    seen: list[tuple[str, float]] = []

    async def one(model: str) -> None:
        await rates.acquire(model)
        seen.append((model, anyio.current_time()))

    async with anyio.create_task_group() as tg:
        for model in models:
            tg.start_soon(one, model)
    return seen


async def test_starts_are_spread_evenly() -> None:
    """Twenty tasks at once start one interval apart: start k never before k intervals."""
    rates = LocalRates(parse_rate("100/second"), {})
    times = [t for _, t in await starts(rates, ["m"] * 20)]
    early = [k for k, t in enumerate(times) if t - times[0] < k * 0.01 - 1e-6]
    assert [] == early


async def test_model_rate_applies_to_its_model_only() -> None:
    """A per-model rate spaces that model's starts and leaves the others alone."""
    rates = LocalRates(None, {"slow": parse_rate("20/second")})
    seen = await starts(rates, ["slow"] * 4 + ["fast"] * 20)
    slow = [t for model, t in seen if model == "slow"]
    fast = [t for model, t in seen if model == "fast"]
    assert all(t - slow[0] >= k * 0.05 - 1e-6 for k, t in enumerate(slow))
    assert max(fast) < slow[1]


async def test_cancelled_waiter_takes_nothing() -> None:
    """A task cancelled while waiting leaves the next start where it was."""
    rates = LocalRates(parse_rate("10/second"), {})
    await rates.acquire("m")
    due = rates.limits("m")[0].tat
    with anyio.move_on_after(0.01):
        await rates.acquire("m")
    assert due == rates.limits("m")[0].tat
