"""Pacing through the client: rate limits, the platform's pauses, rate-limit headers, deadlines."""

from __future__ import annotations

import logging

import anyio
import pytest
from pacing_windows import most_in_window

from linkai_images import AsyncImageClient, ImageClient, RateLimitError, RetryPolicy, set_testing
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


def starts(fake: FakeLinkAI) -> list[float]:
    """When the fake received each request, oldest first."""
    return [r.received_at for r in fake.requests]


async def test_rate_limit_spreads_a_batch(server: FakeServer) -> None:
    """A batch at concurrency 16 under 10/second starts one request every 100 ms at most."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        max_concurrency=16,
        rate_limit="10/second",
    ) as client:
        await client.generate("warm up", model="gpt-image-2")  # the first connection is slow
        server.fake.reset()
        await client.generate_many([{"prompt": f"p{i}", "model": "gpt-image-2"} for i in range(10)])
    times = starts(server.fake)
    # Windows of whole intervals (100 ms, the rate's spacing), so that a late wake-up of one
    # request on a busy machine cannot look like a burst.
    assert [] == [w for w in (0.1, 0.3, 0.5) if most_in_window(times, w) > round(w / 0.1) + 1]


async def test_model_rate_limit_leaves_other_models_alone(server: FakeServer) -> None:
    """A per-model rate paces that model; another model's requests are not held back."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        model_rate_limits={"doubao-seedream-4.5": "10/second"},
    ) as client:
        await client.generate("warm up", model="gpt-image-2")  # the first connection is slow
        server.fake.reset()
        await client.generate_many(
            [{"prompt": f"s{i}", "model": "doubao-seedream-4.5"} for i in range(4)]
            + [{"prompt": f"g{i}", "model": "gpt-image-2"} for i in range(8)]
        )
    by_model: dict[str | None, list[float]] = {}
    for r in server.fake.requests:
        by_model.setdefault(r.model, []).append(r.received_at)
    slow = by_model["doubao-seedream-4.5"]
    assert 8 == len(by_model["gpt-image-2"])
    assert max(by_model["gpt-image-2"]) < slow[-1]
    assert [] == [w for w in (0.1, 0.2) if most_in_window(slow, w) > round(w / 0.1) + 1]


async def test_retry_after_pauses_the_model_client_wide(
    server: FakeServer, client: AsyncImageClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 with Retry-After holds back every new request of that model until it passes."""
    server.fake.fail(Fault.status(429, retry_after=0.3), prompt="first", times=1)
    with caplog.at_level(logging.INFO, logger="linkai_images"), set_testing(False):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: client.generate("first"))
            await anyio.sleep(0.1)  # the 429 has come back
            tg.start_soon(lambda: client.generate("second"))
    by_prompt = {r.prompt: r.received_at for r in server.fake.requests if r.status == 200}
    refused = next(r.received_at for r in server.fake.requests if r.status == 429)
    assert by_prompt["second"] - refused >= 0.29
    assert any("pausing new gpt-image-2 requests" in r.getMessage() for r in caplog.records)


async def test_testing_switch_skips_pauses(server: FakeServer, client: AsyncImageClient) -> None:
    """Under set_testing() a Retry-After pauses nothing: a long one does not slow a test."""
    server.fake.fail(Fault.status(503, retry_after=60), prompt="p")
    with anyio.fail_after(5):
        assert 2 == (await client.generate("p")).attempts


async def test_rate_limit_headers_on_error(server: FakeServer, client: AsyncImageClient) -> None:
    """The Retry-After of a 429 is readable, as sent, on the error."""
    server.fake.fail(Fault.status(429, retry_after="7"), prompt="p")
    with pytest.raises(RateLimitError) as caught:
        async with AsyncImageClient(
            server.fake.api_key, base_url=server.base_url, max_retries=0
        ) as once:
            await once.generate("p", model="gpt-image-2")
    assert {"retry-after": "7"} == caught.value.rate_limit_headers
    await client.aclose()


async def test_success_has_no_rate_limit_headers_when_none_sent(
    client: AsyncImageClient,
) -> None:
    """A response without rate-limit headers has an empty mapping."""
    assert {} == dict((await client.generate("p")).rate_limit_headers)


async def test_waiting_for_the_limiter_is_not_deadline_time(server: FakeServer) -> None:
    """A call whose turn comes later than its deadline still succeeds: waiting is not counted."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        rate_limit="4/second",
        deadline=0.2,
        retry_policy=RetryPolicy(timeout=0.2),
    ) as client:
        results = await client.generate_many(["a", "b", "c"])
    assert 3 == len(results)


async def test_cancelling_a_waiting_call_is_clean(server: FakeServer) -> None:
    """A call cancelled while waiting for its turn sends nothing and frees its place."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        rate_limit="2/second",
    ) as client:
        await client.generate("first")
        with anyio.move_on_after(0.1):
            await client.generate("waiting")
        await client.generate("next")
    assert ["first", "next"] == [r.prompt for r in server.fake.requests]


async def test_adaptive_limit_is_readable(server: FakeServer) -> None:
    """concurrency_limit tells the adaptive limit, or max_concurrency when adaptive is off."""
    async with AsyncImageClient(
        server.fake.api_key, base_url=server.base_url, default_model="gpt-image-2"
    ) as plain:
        assert plain.max_concurrency == plain.concurrency_limit()
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        adaptive_concurrency=True,
        max_concurrency=32,
    ) as client:
        before = client.concurrency_limit()
        await client.generate_many([f"p{i}" for i in range(12)])
        assert (4, True) == (before, client.concurrency_limit() > before)


async def test_adaptive_halves_on_429(server: FakeServer) -> None:
    """A 429 halves the model's adaptive limit."""
    async with AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        adaptive_concurrency=True,
        max_retries=0,
    ) as client:
        server.fake.fail(Fault.status(429), prompt="p")
        with pytest.raises(RateLimitError):
            await client.generate("p")
        assert 2 == client.concurrency_limit("gpt-image-2")


def test_blocking_client_takes_the_same_pacing_options(server: FakeServer) -> None:
    """ImageClient accepts the pacing options and reports the adaptive limit."""
    with ImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        rate_limit="100/second",
        model_rate_limits={"gpt-image-2": "50/second"},
        adaptive_concurrency=True,
    ) as client:
        client.generate("p")
        assert 5 == client.concurrency_limit()
