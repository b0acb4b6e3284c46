"""Overload: a 503 storm drains the client-wide retry budget, and recovery refills it."""

from __future__ import annotations

import math

import pytest

from linkai_images import (
    AsyncImageClient,
    ImageResponse,
    ServiceUnavailableError,
)
from linkai_images.testing import FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]

REQUESTS = 100


def make_client(server: FakeServer, **options: object) -> AsyncImageClient:
    return AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        max_retries=2,
        max_concurrency=20,
        **options,  # type: ignore[arg-type]
    )


async def test_storm_of_503s_stays_under_1_2x_attempts(server: FakeServer) -> None:
    """Under 100% 503s, 100 requests with max_retries=2 make at most 120 attempts, not 300."""
    fake = server.fake
    fake.fail_randomly(1.0, Fault.status(503))
    async with make_client(server) as client:
        results = await client.generate_many(
            [f"p{i}" for i in range(REQUESTS)], return_exceptions=True
        )
        assert all(isinstance(result, ServiceUnavailableError) for result in results)
        assert fake.request_count <= 1.2 * REQUESTS
        assert 0.0 == client.retry_budget.tokens  # type: ignore[union-attr]
        # Once drained, every request is a single attempt.
        fake.reset()
        await client.generate_many([f"q{i}" for i in range(30)], return_exceptions=True)
        assert 30 == fake.request_count


async def test_without_a_budget_the_storm_triples_the_traffic(server: FakeServer) -> None:
    """The contrast: retry_budget=None retries every 503, three attempts per request."""
    fake = server.fake
    fake.fail_randomly(1.0, Fault.status(503))
    async with make_client(server, retry_budget=None) as client:
        await client.generate_many([f"p{i}" for i in range(50)], return_exceptions=True)
    assert 3 * 50 == fake.request_count


async def test_retries_resume_when_successes_refill_the_budget(server: FakeServer) -> None:
    """After the storm, a lone 503 is not retried; enough successes later, it is again."""
    fake = server.fake
    fake.fail_randomly(1.0, Fault.status(503))
    async with make_client(server) as client:
        budget = client.retry_budget
        assert budget is not None
        await client.generate_many([f"p{i}" for i in range(REQUESTS)], return_exceptions=True)
        fake.fail_randomly(0.0, Fault.status(503))  # the storm ends

        fake.fail(Fault.status(503), prompt="early")
        with pytest.raises(ServiceUnavailableError) as info:
            await client.generate("early")
        assert 1 == info.value.attempts  # the budget is still empty: no retry

        # A failure takes its token before the check: the budget must exceed half plus one.
        refill = math.floor((budget.max_tokens / 2 + 1) / budget.token_ratio) + 1
        healthy = await client.generate_many([f"ok{i}" for i in range(refill)])
        assert all(isinstance(r, ImageResponse) and r.attempts == 1 for r in healthy)
        assert budget.allows_retry()

        fake.fail(Fault.status(503), prompt="late")
        assert 2 == (await client.generate("late")).attempts
