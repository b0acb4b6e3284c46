"""The limiter shared through a real Redis: one pace across clients, clear failures."""

from __future__ import annotations

import logging
import uuid

import anyio
import pytest
from pacing_windows import most_in_window

from linkai_images import AsyncImageClient, LimiterError
from linkai_images.testing import FakeServer

pytestmark = pytest.mark.anyio


def shared_client(server: FakeServer, url: str, prefix: str, **options: object) -> AsyncImageClient:
    """A client on the fake pacing through the shared limiter at ``url``."""
    return AsyncImageClient(
        server.fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
        limiter_url=url,
        limiter_prefix=prefix,
        **options,  # type: ignore[arg-type]
    )


async def test_two_clients_share_one_pace(server: FakeServer, redis_url: str) -> None:
    """Two clients on one Redis key prefix keep 10/second between them."""
    prefix = f"test-{uuid.uuid4().hex}"
    async with (
        shared_client(server, redis_url, prefix, rate_limit="10/second") as one,
        shared_client(server, redis_url, prefix, rate_limit="10/second") as two,
    ):
        await one.generate("warm up")
        await two.generate("warm up")
        server.fake.reset()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: one.generate_many([f"a{i}" for i in range(6)]))
            tg.start_soon(lambda: two.generate_many([f"b{i}" for i in range(6)]))
    times = [r.received_at for r in server.fake.requests]
    assert 12 == len(times)
    assert [] == [w for w in (0.1, 0.3, 0.5) if most_in_window(times, w) > round(w / 0.1) + 1]


async def test_model_rates_are_shared_too(server: FakeServer, redis_url: str) -> None:
    """A per-model rate kept in Redis spaces that model's starts across clients."""
    prefix = f"test-{uuid.uuid4().hex}"
    limits = {"gpt-image-2": "10/second"}
    async with (
        shared_client(server, redis_url, prefix, model_rate_limits=limits) as one,
        shared_client(server, redis_url, prefix, model_rate_limits=limits) as two,
    ):
        await one.generate("warm up")
        await two.generate("warm up")
        server.fake.reset()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: one.generate_many([f"a{i}" for i in range(4)]))
            tg.start_soon(lambda: two.generate_many([f"b{i}" for i in range(4)]))
    times = [r.received_at for r in server.fake.requests]
    assert [] == [w for w in (0.1, 0.3) if most_in_window(times, w) > round(w / 0.1) + 1]


async def test_unreachable_redis_is_a_clear_error(server: FakeServer, dead_redis_url: str) -> None:
    """With Redis down, a call fails with LimiterError naming the URL, and sends nothing."""
    url = dead_redis_url
    async with shared_client(server, url, "x", rate_limit="10/second") as client:
        with pytest.raises(LimiterError, match=f"shared rate limiter at {url}"):
            await client.generate("p")
    assert [] == server.fake.requests


async def test_fallback_only_when_asked(
    server: FakeServer, dead_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """limiter_fallback=True paces in-process when Redis is down, and says so in the log."""
    url = dead_redis_url
    async with shared_client(
        server, url, "x", rate_limit="10/second", limiter_fallback=True
    ) as client:
        with caplog.at_level(logging.WARNING, logger="linkai_images"):
            await client.generate("p")
    assert 1 == len(server.fake.requests)
    assert any("pacing this process on its own" in r.getMessage() for r in caplog.records)


def test_limiter_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINKAI_LIMITER_URL is used when no limiter_url is given; a non-Redis URL is refused."""
    monkeypatch.setenv("LINKAI_LIMITER_URL", "http://example.invalid/")
    with pytest.raises(Exception, match=r"\$LINKAI_LIMITER_URL .* is not a Redis URL"):
        AsyncImageClient("sk-test", rate_limit="1/second")


def test_password_is_masked_in_errors() -> None:
    """A password in the limiter URL never shows in a message."""
    with pytest.raises(Exception, match=r"redis\+x://user:\*\*\*\*@host") as caught:
        AsyncImageClient("sk-test", rate_limit="1/second", limiter_url="redis+x://user:pw@host/0")
    assert "pw@" not in str(caught.value)


def test_limiter_url_without_a_rate_is_refused() -> None:
    """An explicit limiter_url with nothing to share is a mistake, said at once."""
    with pytest.raises(ValueError, match="add rate_limit="):
        AsyncImageClient("sk-test", limiter_url="redis://127.0.0.1:6379/0")


async def test_cancelling_a_shared_wait_sends_nothing(server: FakeServer, redis_url: str) -> None:
    """A call cancelled while waiting for its shared turn sends nothing; the next one goes."""
    prefix = f"test-{uuid.uuid4().hex}"
    async with shared_client(server, redis_url, prefix, rate_limit="4/second") as client:
        await client.generate("first")
        with anyio.move_on_after(0.05):
            await client.generate("waiting")
        await client.generate("next")
    assert ["first", "next"] == [r.prompt for r in server.fake.requests]
