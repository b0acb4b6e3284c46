"""The in-process transport: the same fake through httpx, async and sync, with no sockets."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from linkai_images.testing import FakeLinkAI, FakeTransport, Fault, png_size

pytestmark = pytest.mark.anyio

BODY = {"model": "gpt-image-2", "prompt": "an orange tabby", "size": "1K", "aspect_ratio": "1:1"}


def async_client(fake: FakeLinkAI) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    return httpx.AsyncClient(transport=fake.transport(), base_url=fake.base_url, headers=headers)


def test_transport_is_both_async_and_sync() -> None:
    """One object serves httpx.AsyncClient and httpx.Client."""
    transport = FakeLinkAI().transport()
    assert isinstance(transport, FakeTransport)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    assert isinstance(transport, httpx.BaseTransport)
    assert "http://linkai.fake/v1" == FakeLinkAI().base_url


async def test_async_generation_and_download_go_through_the_transport() -> None:
    """The API answer's URL is on the in-process CDN host and downloads a real PNG."""
    fake = FakeLinkAI()
    async with async_client(fake) as client:
        response = await client.post("/images/generations", json=BODY)
        url = response.json()["data"][0]["url"]
        image = await client.get(url)
    assert url.startswith("http://cdn.linkai.fake/user/generate/")
    assert (200, (64, 64)) == (image.status_code, png_size(image.content))
    assert 1 == len(fake.cdn_requests)


def test_sync_client_works_too() -> None:
    """httpx.Client over the transport gets the same answers."""
    fake = FakeLinkAI()
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        assert 401 == client.post("/images/generations", json=BODY).status_code
        client.headers["Authorization"] = f"Bearer {fake.api_key}"
        response = client.post("/images/generations", json=BODY)
        image = client.get(response.json()["data"][0]["url"])
        head = client.head(response.json()["data"][0]["url"])
    assert (64, 64) == png_size(image.content)
    assert (b"", str(len(image.content))) == (head.content, head.headers["content-length"])


async def test_drop_raises_remote_protocol_error() -> None:
    """A dropped request surfaces as httpx.RemoteProtocolError, as from a real server."""
    fake = FakeLinkAI()
    fake.fail(Fault.drop())
    async with async_client(fake) as client:
        with pytest.raises(httpx.RemoteProtocolError, match="disconnected"):
            await client.post("/images/generations", json=BODY)
    assert 0 == fake.in_flight


async def test_read_timeout_is_honoured() -> None:
    """A hang longer than the read timeout raises httpx.ReadTimeout after that timeout."""
    fake = FakeLinkAI()
    fake.fail(Fault.hang(3600))
    async with async_client(fake) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/images/generations", json=BODY, timeout=0.1)
    assert 0.1 <= time.monotonic() - started < 1
    assert 0 == fake.in_flight


def test_sync_latency_sleeps() -> None:
    """Latency applies to the sync path too (time.sleep)."""
    fake = FakeLinkAI(latency=0.1)
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        started = time.monotonic()
        client.post("/images/generations", json=BODY)
    assert time.monotonic() - started >= 0.1


async def test_cancelling_a_waiting_request_ends_it() -> None:
    """A caller cancelled during the latency leaves nothing in flight."""
    fake = FakeLinkAI(latency=30)
    async with async_client(fake) as client:
        with anyio.move_on_after(0.1):
            await client.post("/images/generations", json=BODY)
    assert (1, 0) == (fake.max_in_flight, fake.in_flight)


async def test_concurrent_requests_are_in_flight_together() -> None:
    """Latency is awaited with anyio, so concurrent requests overlap on either backend."""
    fake = FakeLinkAI(latency=0.1)
    async with async_client(fake) as client, anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(client.post, f"/images/generations?i={i}")
    assert 20 == fake.max_in_flight


async def test_other_hosts_are_unreachable() -> None:
    """A host other than the fake's API and CDN gets httpx.ConnectError."""
    async with async_client(FakeLinkAI()) as client:
        with pytest.raises(httpx.ConnectError, match=r"example\.com"):
            await client.get("https://example.com/")


async def test_headers_are_recorded_lower_cased_with_repeats_joined() -> None:
    """Recorded headers have lower-case names; a repeated header is joined with ', '."""
    fake = FakeLinkAI()
    async with async_client(fake) as client:
        headers = [("X-Trace", "a"), ("X-Trace", "b")]
        await client.post("/images/generations", json=BODY, headers=headers)
    assert "a, b" == fake.requests[0].headers["x-trace"]
