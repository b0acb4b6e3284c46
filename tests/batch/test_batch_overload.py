"""The retry budget on the fake: it lets ordinary noise through and holds an outage to ~1.2x.

Every client here has the default budget with a clock that never moves: with zero backoff
a test takes no time the budget should see, and a frozen clock gives the fewest retries
for noise and the most for a storm, so each target is met in its worst case.
"""

from __future__ import annotations

import pytest

from linkai_images import (
    AsyncImageClient,
    ImageResponse,
    RetryBudget,
    ServiceUnavailableError,
)
from linkai_images.testing import FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


def make_client(server: FakeServer, **options: object) -> AsyncImageClient:
    """A client with the default retries and budget, on a frozen clock."""
    options.setdefault("retry_budget", RetryBudget(clock=lambda: 0.0))
    return AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        **options,  # type: ignore[arg-type]
    )


async def test_a_quarter_of_503s_is_absorbed_like_without_a_budget(server: FakeServer) -> None:
    """25% random 503s, a batch of 200 at the defaults: at least 97% succeed."""
    server.fake.fail_randomly(0.25, Fault.status(503))
    async with make_client(server) as client:
        # One at a time, so the fake's seeded draws meet the attempts in one order on every
        # run and backend (in parallel the count would move with scheduling).
        results = await client.generate_many(
            [f"p{i}" for i in range(200)], concurrency=1, return_exceptions=True
        )
    succeeded = sum(isinstance(result, ImageResponse) for result in results)
    assert succeeded >= 194, f"{succeeded} of 200 succeeded"


async def test_a_storm_of_503s_stays_under_1_25_attempts_per_request(server: FakeServer) -> None:
    """100% 503s over 500 requests: at most 625 attempts; then each request gets one."""
    fake = server.fake
    fake.fail_randomly(1.0, Fault.status(503))
    async with make_client(server) as client:
        results = await client.generate_many([f"p{i}" for i in range(500)], return_exceptions=True)
        assert all(isinstance(result, ServiceUnavailableError) for result in results)
        assert fake.request_count <= 625, f"{fake.request_count} attempts for 500 requests"
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


async def test_retries_resume_within_50_requests_after_a_storm(server: FakeServer) -> None:
    """A storm that ends with 10% of requests still failing: retries are back within 50."""
    fake = server.fake
    fake.fail_randomly(1.0, Fault.status(503))
    async with make_client(server, max_concurrency=8) as client:
        await client.generate_many([f"storm{i}" for i in range(500)], return_exceptions=True)
        fake.fail_randomly(0.1, Fault.status(503))
        outcomes = []  # (attempts made, succeeded) of each request, in order
        for i in range(50):
            try:
                outcomes.append(((await client.generate(f"after{i}")).attempts, True))
            except ServiceUnavailableError as exc:
                outcomes.append((exc.attempts, False))
    retried = [i for i, (made, _) in enumerate(outcomes) if made > 1]
    not_retried = [i for i, (made, ok) in enumerate(outcomes) if made == 1 and not ok]
    assert retried, f"no retry in 50 requests after the storm: {outcomes}"
    # Once back, retries stay: no later 503 ends a request after one attempt.
    assert all(i < retried[0] for i in not_retried), outcomes
