"""as_completed against the fake on loopback: order, laziness, early exit, errors as items."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from helpers import wait_until

from linkai_images import (
    AsyncImageClient,
    BatchItem,
    ImageRequest,
    RequestValidationError,
)
from linkai_images.testing import FakeLinkAI, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


async def test_items_come_in_completion_order(client: AsyncImageClient, fake: FakeLinkAI) -> None:
    """A request held by the server comes out after the later, quicker ones."""
    fake.fail(Fault.hang(0.5), prompt="slow")
    async with client.as_completed(["slow", "a", "b", "c"], concurrency=4) as items:
        order = [item.index async for item in items]
    assert [1, 2, 3] == sorted(order[:3])
    assert 0 == order[-1]


async def test_each_item_has_exactly_one_of_response_and_error(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Successes carry a response, failures an error, and the request they came from."""
    fake.fail(Fault.status(500), prompt="p1")
    async with client.as_completed(["p0", "p1"]) as items:
        by_index = {item.index: item async for item in items}
    assert by_index[0].ok
    assert by_index[0].error is None
    assert by_index[0].response is not None
    assert not by_index[1].ok
    assert by_index[1].response is None
    assert 500 == by_index[1].error.status_code  # type: ignore[union-attr]
    assert ImageRequest(prompt="p1", model="gpt-image-2") == by_index[1].request


async def test_plain_async_for_runs_to_the_end(client: AsyncImageClient) -> None:
    """Without `async with`, a loop that runs to its end gets every item."""
    indices = [item.index async for item in client.as_completed([f"p{i}" for i in range(10)])]
    assert list(range(10)) == sorted(indices)


async def test_in_flight_bound_is_reached_and_kept(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """The pool keeps exactly `concurrency` requests in flight."""
    fake.latency = 0.05
    async with client.as_completed((f"p{i}" for i in range(24)), concurrency=6) as items:
        count = sum([1 async for _ in items])
    assert 24 == count
    assert 6 == fake.max_in_flight


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_lazy_iterable_is_pulled_incrementally(client: AsyncImageClient, kind: str) -> None:
    """A (sync or async) generator is read a request at a time: pulled minus yielded stays
    within 2x the pool."""
    pulled = 0

    def sync_prompts() -> Iterator[str]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield f"p{i}"

    async def async_prompts() -> AsyncIterator[str]:
        for prompt in sync_prompts():
            yield prompt

    source = sync_prompts() if kind == "sync" else async_prompts()
    ahead = []
    async with client.as_completed(source, concurrency=4) as items:
        yielded = 0
        async for _ in items:
            yielded += 1
            ahead.append(pulled - yielded)
    assert 200 == pulled
    assert 200 == yielded
    assert max(ahead) <= 2 * 4


async def test_infinite_input_and_early_break_cancels_the_workers(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Breaking out of an `async with` loop over an endless input stops it; the client works."""

    def endless() -> Iterator[str]:
        i = 0
        while True:
            yield f"p{i}"
            i += 1

    fake.latency = 0.02
    async with client.as_completed(endless(), concurrency=4) as items:
        async for item in items:
            if item.index >= 10:
                break
    await wait_until(lambda: fake.in_flight == 0)
    # Eleven items taken; at most a pool's worth in flight and a buffer's worth pulled besides.
    assert fake.request_count <= 11 + 2 * 4
    fake.latency = 0.0
    assert 1 == (await client.generate("after")).attempts


async def test_aclose_cancels_in_flight_requests(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """aclose() inside the block cancels what is in flight, promptly, and ends the loop."""
    fake.fail(Fault.hang(60), prompt="stuck", times=3)
    requests = ["quick", "stuck", "stuck", "stuck"]
    seen = []
    async with client.as_completed(requests, concurrency=4) as items:
        async for item in items:
            seen.append(item.request.prompt)
            await wait_until(lambda: fake.in_flight == 3)
            await items.aclose()
    assert ["quick"] == seen
    await wait_until(lambda: fake.in_flight == 0)


async def test_plain_loop_left_early_leaves_nothing_running(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A plain `async for` broken out of inside a cancel scope: no error, nothing in flight."""
    fake.latency = 0.01
    with anyio.CancelScope() as scope:
        async for item in client.as_completed([f"p{i}" for i in range(100)], concurrency=4):
            assert item.ok
            break
    assert not scope.cancel_called
    assert 0 == fake.in_flight  # plain loops run requests only inside __anext__
    # One wave: the pool stays full until `concurrency` results are ready, then drains.
    assert fake.request_count <= 2 * 4
    assert 4 == fake.max_in_flight


async def test_plain_loop_cancelled_in_its_body_is_clean(client: AsyncImageClient) -> None:
    """A cancellation landing in a plain loop's body (not in __anext__) corrupts nothing."""
    with anyio.CancelScope() as scope:
        async for _ in client.as_completed([f"p{i}" for i in range(20)], concurrency=2):
            scope.cancel()
            await anyio.sleep(1)
    assert scope.cancelled_caught
    assert 1 == (await client.generate("after")).attempts


async def test_plain_loop_with_checkpoint_releases_it_when_dropped(
    client: AsyncImageClient, tmp_path: Path
) -> None:
    """A plain loop left early and dropped releases its checkpoint; the next run may use it."""
    journal = tmp_path / "run.jsonl"
    async for _ in client.as_completed(["a", "b", "c"], concurrency=1, checkpoint=journal):
        break
    gc.collect()
    assert 3 == len(await client.generate_many(["a", "b", "c"], checkpoint=journal))


async def test_cancelling_the_consumer_cancels_the_workers(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A timeout around the `async with` loop ends the requests in flight."""
    fake.latency = 30.0
    with anyio.move_on_after(0.3) as scope:
        async with client.as_completed([f"p{i}" for i in range(5)]) as items:
            async for _ in items:
                pass
    assert scope.cancelled_caught
    await wait_until(lambda: fake.in_flight == 0)
    fake.latency = 0.0
    assert 1 == (await client.generate("after")).attempts


async def test_plain_loop_cancelled_while_waiting_cleans_up(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A plain `async for` cancelled while waiting for an item stops its workers itself."""
    fake.latency = 30.0
    with anyio.move_on_after(0.3) as scope:
        async for _ in client.as_completed([f"p{i}" for i in range(5)]):
            pass
    assert scope.cancelled_caught
    await wait_until(lambda: fake.in_flight == 0)


async def test_invalid_lazy_request_is_an_item_error(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A bad request pulled lazily comes out as its item's RequestValidationError; others run."""
    requests: list[object] = ["p0", {"prompt": "p1", "size": "3K"}, 42, "p3"]
    async with client.as_completed(requests) as items:  # type: ignore[arg-type]
        by_index = {item.index: item async for item in items}
    assert [True, False, False, True] == [by_index[i].ok for i in range(4)]
    assert isinstance(by_index[1].error, RequestValidationError)
    assert str(by_index[1].error).startswith("requests[1]: ")
    assert "p1" == by_index[1].request.prompt
    assert isinstance(by_index[2].error, RequestValidationError)
    assert 2 == fake.request_count


async def test_input_that_raises_ends_the_batch_after_in_flight_settles(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """An input iterator failing mid-way: the items already pulled still come, then its error."""

    def broken() -> Iterator[str]:
        yield "p0"
        yield "p1"
        raise KeyError("the input broke")

    seen: list[BatchItem] = []

    async def consume() -> None:
        async with client.as_completed(broken(), concurrency=2) as items:
            async for item in items:
                seen.append(item)

    with pytest.raises(KeyError, match="the input broke"):
        await consume()
    assert [0, 1] == sorted(item.index for item in seen)
    assert all(item.ok for item in seen)


async def test_account_error_aborts_the_rest_in_as_completed(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """After a 406 the remaining requests come out as BatchAbortedError items, unsent."""
    from linkai_images import BatchAbortedError, InsufficientCreditsError

    fake.credits = 0
    async with client.as_completed([f"p{i}" for i in range(10)], concurrency=1) as items:
        errors = [type(item.error) async for item in items]
    assert [InsufficientCreditsError] + [BatchAbortedError] * 9 == errors
    assert 1 == fake.request_count


async def test_iterator_started_twice_is_refused(client: AsyncImageClient) -> None:
    """An as_completed iterator is one run: entering it again is an error."""
    items = client.as_completed(["p0"])
    async with items:
        assert [0] == [item.index async for item in items]
        assert [] == [item.index async for item in items]
    with pytest.raises(RuntimeError, match="already started"):
        async with items:
            pass
