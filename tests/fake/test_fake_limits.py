"""The fake's rate limit and capacity: 429 with Retry-After beyond either; starts by model."""

from __future__ import annotations

import anyio
import httpx
import pytest

from linkai_images.testing import FakeLinkAI

pytestmark = pytest.mark.anyio


async def post(fake: FakeLinkAI, count: int, model: str = "gpt-image-2") -> list[httpx.Response]:
    """``count`` requests sent together through the in-process transport."""
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=fake.base_url, headers=headers
    ) as http:

        async def one(i: int) -> None:
            body = {"model": model, "prompt": f"p{i}"}
            responses.append(await http.post("/images/generations", json=body))

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(one, i)
    return responses


async def test_rate_limit_refuses_a_burst_with_retry_after() -> None:
    """At 2/second, of five requests at once two pass (one interval early is tolerated)."""
    fake = FakeLinkAI(rate_limit="2/second")
    statuses = sorted(r.status_code for r in await post(fake, 5))
    assert [200, 200, 429, 429, 429] == statuses
    waits = [float(r.headers["retry-after"]) for r in await post(fake, 1) if r.status_code == 429]
    assert [] == [w for w in waits if not 0 < w <= 1.0]


async def test_refusal_says_which_limit() -> None:
    """The 429's message names the rate that was exceeded."""
    limited = FakeLinkAI(rate_limit="1/hour")
    responses = await post(limited, 3)
    messages = {r.json()["error"]["message"] for r in responses if r.status_code == 429}
    assert {"rate limit reached (1/hour); slow down"} == messages
    assert {"rate_limit_error"} == {
        r.json()["error"]["type"] for r in responses if r.status_code == 429
    }


async def test_capacity_refuses_beyond_the_running_requests() -> None:
    """With capacity 2 and slow generation, a third request at once gets 429 until one ends."""
    fake = FakeLinkAI(capacity=2, latency=0.2)
    responses = await post(fake, 3)
    refused = [r for r in responses if r.status_code == 429]
    assert 1 == len(refused)
    assert 0 < float(refused[0].headers["retry-after"]) <= 0.2
    assert "capacity 2" in refused[0].json()["error"]["message"]
    assert [200] == [r.status_code for r in await post(fake, 1)]


async def test_starts_are_recorded_by_model() -> None:
    """Every request's arrival is recorded under its model, refused ones included."""
    fake = FakeLinkAI(rate_limit="1/hour")
    await post(fake, 2, model="gpt-image-2")
    await post(fake, 1, model="doubao-seedream-4.5")
    assert (2, 1, 3) == (
        len(fake.starts("gpt-image-2")),
        len(fake.starts("doubao-seedream-4.5")),
        len(fake.starts()),
    )
    assert fake.starts() == sorted(fake.starts())


async def test_reset_forgets_the_limits_state() -> None:
    """After reset() the account starts afresh."""
    fake = FakeLinkAI(rate_limit="1/hour")
    await post(fake, 2)
    fake.reset()
    assert ([200], []) == ([r.status_code for r in await post(fake, 1)], fake.starts()[1:])


def test_limits_are_checked() -> None:
    """A bad rate or capacity is refused when the fake is made."""
    with pytest.raises(ValueError, match="N/second, N/minute or N/hour"):
        FakeLinkAI(rate_limit="2 per second")
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        FakeLinkAI(capacity=0)
    assert ("60/minute", 8) == (
        FakeLinkAI(rate_limit="60/minute", capacity=8).rate_limit,
        FakeLinkAI(capacity=8).capacity,
    )
