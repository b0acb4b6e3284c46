"""The issue's targets, scaled to seconds: a paced client against a fake enforcing the same rate,
and adaptive concurrency against a fake with a small capacity.

Wall-clock figures (time against the ideal, throughput) are benchmarks
(benchmarks/bench_pacing.py); here only counts are asserted.
"""

from __future__ import annotations

import pytest
from pacing_windows import window_excess

from linkai_images import AsyncImageClient
from linkai_images.testing import FakeLinkAI

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]

#: The scaled rate R: 600 a minute, one start every 100 ms (wider than a busy machine's
#: scheduling jitter, so a late wake-up does not look like a burst).
RATE = "600/minute"
PER_SECOND = 10.0


async def test_paced_client_meets_a_fake_enforcing_the_same_rate() -> None:
    """At concurrency 64, 5 s worth of requests: no 429, at most R*W/60 + 1 starts in any window."""
    fake = FakeLinkAI(rate_limit=RATE, latency=0.02)
    with fake.serve() as server:
        async with AsyncImageClient(
            fake.api_key,
            base_url=server.base_url,
            default_model="gpt-image-2",
            max_concurrency=64,
            rate_limit=RATE,
        ) as client:
            await client.generate("warm up")  # the first connection is slow to open
            fake.reset()
            results = await client.generate_many(
                [f"p{i}" for i in range(int(5 * PER_SECOND))], return_exceptions=True
            )
    statuses = [r.status for r in fake.requests]
    assert (int(5 * PER_SECOND), 0) == (len(results), statuses.count(429))
    widths = [0.1, 0.25, 0.5, 1.0, 2.0]
    assert [] == window_excess(fake.starts(), PER_SECOND, widths)


async def test_adaptive_concurrency_keeps_429s_rare() -> None:
    """Capacity 8, max_concurrency 64, adaptive on: 429s are at most 5% of attempts."""
    fake = FakeLinkAI(capacity=8, latency=0.03)
    with fake.serve() as server:
        async with AsyncImageClient(
            fake.api_key,
            base_url=server.base_url,
            default_model="gpt-image-2",
            max_concurrency=64,
            adaptive_concurrency=True,
            max_retries=5,
            retry_budget=None,  # the first overshoot refuses several at once: retry them all
        ) as client:
            results = await client.generate_many([f"p{i}" for i in range(400)])
            limit = client.concurrency_limit()
    attempts = fake.request_count
    refused = [r.status for r in fake.requests].count(429)
    assert 400 == len(results)
    assert refused <= 0.05 * attempts, (refused, attempts)
    assert 4 <= limit <= 9
