"""generate_many against the fake on loopback: alignment, bounds, errors, abort, cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from helpers import wait_until

from linkai_images import (
    AsyncImageClient,
    AuthenticationError,
    BatchAbortedError,
    BatchError,
    BatchResults,
    ContentModerationError,
    ImageRequest,
    ImageResponse,
    InsufficientCreditsError,
    RequestValidationError,
)
from linkai_images._models import RequestLike
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


async def test_results_align_with_inputs_of_every_form(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Strings, dicts and ImageRequests come back as responses in input order."""
    requests: list[RequestLike] = [
        "a fox",
        {"prompt": "a cat", "size": "1K"},
        ImageRequest(prompt="an owl", model="doubao-seedream-4.5"),
        "a fox",
    ]
    results = await client.generate_many(requests, concurrency=3)
    assert 4 == len(results)
    assert all(isinstance(result, ImageResponse) for result in results)
    sent = {record.prompt: record.body for record in fake.requests}
    assert ["gpt-image-2", "gpt-image-2", "doubao-seedream-4.5", "gpt-image-2"] == [
        result.model for result in results
    ]
    assert "1K" == sent["a cat"]["size"]  # type: ignore[index]
    assert 2 == fake.attempts("a fox")
    assert len({url for result in results for url in result.urls}) == 4


async def test_in_flight_never_exceeds_concurrency_and_reaches_it(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """With slow answers, the fake sees exactly `concurrency` requests at once, never more."""
    fake.latency = 0.05
    results = await client.generate_many([f"p{i}" for i in range(30)], concurrency=5)
    assert 30 == len(results)
    assert 5 == fake.max_in_flight


async def test_default_concurrency_is_the_clients_max(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Without `concurrency`, the client's max_concurrency (8) is the bound, and it is used."""
    fake.latency = 0.05
    await client.generate_many([f"p{i}" for i in range(24)])
    assert 8 == fake.max_in_flight


async def test_concurrency_outside_bounds_is_refused(client: AsyncImageClient) -> None:
    """0 and more than the client's max_concurrency are ValueErrors naming the limit."""
    with pytest.raises(ValueError, match="max_concurrency"):
        await client.generate_many(["p"], concurrency=9)
    with pytest.raises(ValueError, match="between 1"):
        await client.generate_many(["p"], concurrency=0)


async def test_a_single_string_is_not_taken_as_a_batch(client: AsyncImageClient) -> None:
    """Passing one prompt instead of a list is a TypeError, not a batch of characters."""
    with pytest.raises(TypeError, match="wrap it in a list"):
        await client.generate_many("a fox")


async def test_every_request_is_checked_before_any_is_sent(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A bad request deep in the batch fails the call, names its index, and nothing is sent."""
    requests: list[object] = [f"p{i}" for i in range(50)]
    requests[37] = {"prompt": "x", "size": "3K"}
    requests[41] = "   "
    with pytest.raises(RequestValidationError, match=r"requests\[37\]: .*3K") as info:
        await client.generate_many(requests)  # type: ignore[arg-type]
    assert "41" in str(info.value)
    assert 0 == fake.request_count


async def test_async_iterables_are_accepted(client: AsyncImageClient) -> None:
    """An async generator of requests is read, checked and run like a list."""

    async def prompts() -> AsyncIterator[str]:
        for i in range(5):
            yield f"p{i}"

    results = await client.generate_many(prompts())
    assert 5 == len(results)


async def test_empty_batch_returns_empty_list(client: AsyncImageClient) -> None:
    """No requests: an empty list and no error."""
    assert [] == await client.generate_many([])


async def test_batch_error_carries_successes_after_everything_settled(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """One moderated prompt fails; BatchError comes after all settled, with every success."""
    requests = ["p0", "bad weapon", "p2", "p3"]
    fake.banned_words = {"weapon"}
    with pytest.raises(BatchError) as info:
        await client.generate_many(requests, concurrency=2)
    results = info.value.results
    assert [ImageResponse, ContentModerationError, ImageResponse, ImageResponse] == [
        type(result) for result in results
    ]
    assert 3 == len(info.value.responses)
    assert [1] * 4 == [fake.attempts(p) for p in requests]
    assert isinstance(info.value.__cause__, ContentModerationError)


async def test_return_exceptions_puts_errors_in_place(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """With return_exceptions=True the failure sits at its index, nothing is raised."""
    fake.fail(Fault.status(500), prompt="p1")
    results = await client.generate_many(["p0", "p1", "p2"], return_exceptions=True)
    assert [False, True, False] == [isinstance(r, BaseException) for r in results]
    assert 500 == results[1].status_code  # type: ignore[union-attr]


async def test_one_failure_never_stops_the_others(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Failing requests spread over the batch leave every other request sent and successful."""
    for i in range(0, 20, 4):
        fake.fail(Fault.status(500), prompt=f"p{i}")
    results = await client.generate_many(
        [f"p{i}" for i in range(20)], concurrency=3, return_exceptions=True
    )
    failed = [i for i, result in enumerate(results) if isinstance(result, BaseException)]
    assert [0, 4, 8, 12, 16] == failed
    assert 20 == fake.request_count


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        pytest.param("credits", InsufficientCreditsError, id="406"),
        pytest.param("key", AuthenticationError, id="401"),
    ],
)
async def test_account_error_stops_new_launches(
    client: AsyncImageClient, fake: FakeLinkAI, setup: str, error: type[Exception]
) -> None:
    """After a 401/406 no new request is sent; the rest end with BatchAbortedError(cause)."""
    if setup == "credits":
        fake.credits = 3
    else:
        fake.api_key = "another-key"
    results = await client.generate_many(
        [f"p{i}" for i in range(40)], concurrency=2, return_exceptions=True
    )
    aborted = [r for r in results if isinstance(r, BatchAbortedError)]
    account = [r for r in results if isinstance(r, error)]
    assert account
    assert 40 == len(aborted) + len(account) + sum(isinstance(r, ImageResponse) for r in results)
    # At most the requests already in flight when the first account error came back are sent.
    assert len(results) - len(aborted) == fake.request_count
    assert fake.request_count <= (3 if setup == "credits" else 0) + 2 + 1
    assert all(isinstance(a.cause, error) for a in aborted)
    assert error.__name__ in str(aborted[0])


async def test_cancelling_the_caller_cancels_in_flight_and_client_stays_usable(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Cancelling generate_many drops its in-flight requests; the next call works."""
    fake.latency = 30.0
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.generate_many, [f"p{i}" for i in range(20)])
            await wait_until(lambda: fake.in_flight == 8)
            scope.cancel()
    assert scope.cancelled_caught
    await wait_until(lambda: fake.in_flight == 0)
    assert 8 == fake.request_count
    fake.latency = 0.0
    response = await client.generate("after the cancellation")
    assert 1 == response.attempts


async def test_move_on_after_around_generate_many(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A timeout around the batch ends it; the server sees its requests go away."""
    fake.latency = 30.0
    with anyio.move_on_after(0.3) as scope:
        await client.generate_many([f"p{i}" for i in range(3)])
    assert scope.cancelled_caught
    await wait_until(lambda: fake.in_flight == 0)
    fake.latency = 0.0
    assert [1] == [r.attempts for r in await client.generate_many(["again"])]


async def test_retried_requests_count_their_attempts(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A 503 in the batch is retried (zero backoff in tests) and reports 2 attempts."""
    fake.fail(Fault.status(503), prompt="p1")
    results = await client.generate_many(["p0", "p1"])
    assert [1, 2] == [result.attempts for result in results]


async def test_closed_client_refuses_a_batch(server: FakeServer) -> None:
    """generate_many on a closed client raises ClientClosedError before sending."""
    from linkai_images import ClientClosedError

    client = AsyncImageClient(
        server.fake.api_key, base_url=server.base_url, default_model="gpt-image-2"
    )
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.generate_many(["p"])
    assert 0 == server.fake.request_count


async def test_results_render_as_a_thumbnail_grid_in_notebooks(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """generate_many's list renders as HTML: one <img> per image, failures named."""
    fake.fail(Fault.status(409, message="moderated"), prompt="bad")
    results = await client.generate_many(["a", "bad", "c"], return_exceptions=True)
    assert isinstance(results, BatchResults)
    assert (2, 1) == (len(results.responses), len(results.errors))
    page = results._repr_html_()
    assert 2 == page.count("<img")
    assert "2 of 3 succeeded" in page
    assert "ContentModerationError" in page
