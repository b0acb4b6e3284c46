"""as_completed keeps no per-request state: memory follows the concurrency, not the input."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator

import pytest

from linkai_images import AsyncImageClient
from linkai_images.testing import FakeLinkAI

pytestmark = pytest.mark.anyio

WARM_UP = 150
REQUESTS = 600


def sdk_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by allocations made in the SDK's own code (the fake excluded)."""
    sdk = snapshot.filter_traces(
        [
            tracemalloc.Filter(True, "*/linkai_images/*"),
            tracemalloc.Filter(False, "*/linkai_images/testing/*"),
        ]
    )
    return sum(stat.size for stat in sdk.statistics("filename"))


@pytest.mark.parametrize("plain", [False, True], ids=["async-with", "plain-loop"])
async def test_memory_does_not_grow_with_a_lazy_input(plain: bool) -> None:
    """Over 600 lazily generated requests the SDK's live allocations stay flat after warm-up."""
    fake = FakeLinkAI(record_limit=1)
    async with AsyncImageClient(
        fake.api_key,
        base_url=fake.base_url,
        transport=fake.transport(),
        default_model="gpt-image-2",
        max_concurrency=32,
    ) as client:

        def prompts() -> Iterator[str]:
            for i in range(REQUESTS):
                yield f"prompt {i}"

        sizes: list[int] = []
        seen = 0

        def observe() -> None:
            nonlocal seen
            seen += 1
            if seen in (WARM_UP, REQUESTS - 100):
                gc.collect()
                sizes.append(sdk_bytes(tracemalloc.take_snapshot()))

        tracemalloc.start()
        try:
            batch = client.as_completed(prompts())
            if plain:
                async for _ in batch:
                    observe()
            else:
                async with batch as items:
                    async for _ in items:
                        observe()
        finally:
            tracemalloc.stop()
    assert REQUESTS == seen
    # 350 more requests settled between the two measures: well under 100 bytes each.
    assert sizes[1] - sizes[0] < 24 * 1024, sizes
