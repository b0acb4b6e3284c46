"""Fault injection and latency, over a real loopback server."""

from __future__ import annotations

import contextlib
import json
import random
import ssl
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from linkai_images import APIConnectionError, AsyncImageClient
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = pytest.mark.anyio

# One TLS context for every client: httpx would load the CA bundle per client (slow).
TLS = ssl.create_default_context()
PROMPT = "a lighthouse in a storm"


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.fake.api_key}"}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, verify=TLS, timeout=5
    ) as client:
        yield client


async def generate(client: httpx.AsyncClient, prompt: str = PROMPT, **kw: object) -> httpx.Response:
    body = {"model": "gpt-image-2", "prompt": prompt}
    return await client.post("/images/generations", json=body, **kw)  # type: ignore[arg-type]


async def test_status_fault_answers_in_the_platform_shape_with_retry_after(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Fault.status(503, retry_after=2) is a 503 server_error JSON body with Retry-After: 2."""
    fake.fail(Fault.status(503, retry_after=2))
    response = await generate(client)
    assert 503 == response.status_code
    assert "2" == response.headers["retry-after"]
    assert "server_error" == response.json()["error"]["type"]
    assert ["message", "type"] == sorted(response.json()["error"])
    assert response.headers["x-request-id"]


async def test_status_fault_takes_any_code_message_and_retry_after_text(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """A 429 with a message and an HTTP-date Retry-After is served as given."""
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    fake.fail(Fault.status(429, retry_after=date, message="slow down"))
    fake.fail(Fault.status(503, retry_after=0.5))
    first, second = await generate(client), await generate(client)
    assert (429, date) == (first.status_code, first.headers["retry-after"])
    assert {"message": "slow down", "type": "rate_limit_error"} == first.json()["error"]
    assert (503, "0.5") == (second.status_code, second.headers["retry-after"])
    assert "retry-after" not in (await generate(client, "plain")).headers


async def test_a_prompt_script_fails_the_first_attempts_then_succeeds(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """fail(..., prompt=p, times=2): the first two attempts for p fail, the third succeeds."""
    fake.fail(Fault.status(503), prompt=PROMPT, times=2)
    assert 200 == (await generate(client, "another prompt")).status_code
    statuses = [(await generate(client)).status_code for _ in range(3)]
    assert [503, 503, 200] == statuses
    assert 3 == fake.attempts(PROMPT)
    assert 1 == fake.attempts("another prompt")
    assert 0 == fake.attempts("never sent")


async def test_scripted_faults_queue_in_order_and_the_prompt_queue_goes_first(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Queued faults are served in call order; a prompt's own queue beats the any-prompt queue."""
    fake.fail(Fault.status(500))
    fake.fail(Fault.status(502), prompt=PROMPT)
    fake.fail(Fault.status(504), prompt=PROMPT)
    statuses = [(await generate(client)).status_code for _ in range(4)]
    assert [502, 504, 500, 200] == statuses


async def test_drop_closes_the_connection_without_an_answer(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Fault.drop(): the client sees a disconnect; the request is recorded with no status."""
    fake.fail(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        await generate(client)
    assert 200 == (await generate(client)).status_code
    dropped = fake.requests[0]
    assert (None, Fault.drop()) == (dropped.status, dropped.fault)
    assert 0 == fake.in_flight
    assert 1 == fake.images_generated


async def test_a_drop_after_generation_bills_the_image_the_client_never_gets(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Fault.drop(generated=True): a disconnect, yet one image generated and one credit spent."""
    fake.credits = 2
    fake.fail(Fault.drop(generated=True))
    with pytest.raises(httpx.RemoteProtocolError):
        await generate(client)
    assert (1, 1) == (fake.images_generated, fake.credits)
    assert Fault.drop(generated=True) == fake.requests[0].fault
    assert 0 == fake.in_flight


async def test_the_sdk_does_not_resend_a_request_dropped_after_generation(
    fake: FakeLinkAI,
) -> None:
    """Over the in-process transport too: one attempt, request_sent, one image billed."""
    fake.fail(Fault.drop(generated=True))
    async with AsyncImageClient(
        fake.api_key,
        base_url=fake.base_url,
        transport=fake.transport(),
        default_model="gpt-image-2",
    ) as sdk:
        with pytest.raises(APIConnectionError) as info:
            await sdk.generate(PROMPT)
    assert (True, 1) == (info.value.request_sent, info.value.attempts)
    assert (1, 1) == (fake.attempts(PROMPT), fake.images_generated)


async def test_hang_outlasts_the_client_timeout_and_does_not_block_stop(fake: FakeLinkAI) -> None:
    """Fault.hang(): no answer before the client's timeout, and stopping the server is immediate."""
    fake.fail(Fault.hang(3600))
    with fake.serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url, verify=TLS) as client:
            client.headers["Authorization"] = f"Bearer {fake.api_key}"
            with pytest.raises(httpx.ReadTimeout):
                await generate(client, timeout=0.2)

            async def hanging() -> None:
                with contextlib.suppress(httpx.TransportError):
                    await generate(client)

            async with anyio.create_task_group() as tg:
                fake.fail(Fault.hang(3600))
                tg.start_soon(hanging)
                # The count changes in the server's thread: there is nothing to await.
                with anyio.fail_after(5):
                    while fake.in_flight < 1:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                started = time.monotonic()
                server.stop()
                assert time.monotonic() - started < 1
                tg.cancel_scope.cancel()
    assert not server.running


async def test_hang_closes_the_connection_after_its_seconds(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """A short hang ends with the connection closed, not with an answer."""
    fake.fail(Fault.hang(0.1))
    with pytest.raises(httpx.RemoteProtocolError):
        await generate(client)
    assert 0 == fake.in_flight


async def test_malformed_json_is_a_200_with_a_broken_body(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Fault.malformed_json(): 200, application/json, and a body that does not parse."""
    fake.fail(Fault.malformed_json())
    response = await generate(client)
    assert (200, "application/json") == (response.status_code, response.headers["content-type"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_html_error_is_a_proxy_page(client: httpx.AsyncClient, fake: FakeLinkAI) -> None:
    """Fault.html_error(502): an nginx-style HTML page with status 502."""
    fake.fail(Fault.html_error(502))
    response = await generate(client)
    assert (502, "text/html") == (response.status_code, response.headers["content-type"])
    assert response.text.startswith("<html>")
    assert "502 Bad Gateway" in response.text


async def test_empty_error_has_no_body(client: httpx.AsyncClient, fake: FakeLinkAI) -> None:
    """Fault.empty_error(503): status 503, Content-Length 0."""
    fake.fail(Fault.empty_error(503))
    response = await generate(client)
    assert (503, b"", "0") == (
        response.status_code,
        response.content,
        response.headers["content-length"],
    )


async def test_faulted_requests_spend_no_credits(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """A fault stands in for the platform's answer: nothing is generated or charged."""
    fake.credits = 1
    fake.fail(Fault.status(503))
    fake.fail(Fault.drop())
    assert 503 == (await generate(client)).status_code
    with pytest.raises(httpx.RemoteProtocolError):
        await generate(client)
    assert 200 == (await generate(client)).status_code
    assert 0 == fake.credits


async def statuses(fake: FakeLinkAI, count: int) -> list[int]:
    transport = fake.transport()
    async with httpx.AsyncClient(transport=transport, base_url=fake.base_url) as client:
        client.headers["Authorization"] = f"Bearer {fake.api_key}"
        return [(await generate(client, f"p{i}")).status_code for i in range(count)]


async def test_random_faults_follow_the_rate_and_the_seed() -> None:
    """fail_randomly(0.3): about 30% get 503; the same seed repeats, another seed differs."""
    runs = []
    for seed in (7, 7, 8):
        fake = FakeLinkAI(seed=seed)
        fake.fail_randomly(0.3)
        runs.append(await statuses(fake, 200))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {200, 503} == set(runs[0])
    assert 40 <= runs[0].count(503) <= 80


async def test_several_random_faults_share_one_draw_and_rate_zero_removes() -> None:
    """Two faults at 50% each fail every request; setting one to 0 removes it."""
    fake = FakeLinkAI()
    fake.fail_randomly(0.5, Fault.status(502))
    fake.fail_randomly(0.5, Fault.empty_error(503))
    assert {502, 503} == set(await statuses(fake, 40))
    fake.fail_randomly(0, Fault.status(502))
    assert {200, 503} == set(await statuses(fake, 40))
    with pytest.raises(ValueError, match="more than 1"):
        fake.fail_randomly(0.6, Fault.drop())
    with pytest.raises(ValueError, match="between 0 and 1"):
        fake.fail_randomly(1.5)


async def test_fixed_latency_delays_every_answer(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """latency=0.2 makes each answer take at least 0.2 s, and the server stays concurrent."""
    fake.latency = 0.2
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(generate, client, f"p{i}")
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.6
    assert 5 == fake.max_in_flight


def test_latency_functions_get_a_seeded_random() -> None:
    """A latency function is called with a Random seeded from `seed`: same seed, same delays."""

    def delays(seed: int) -> list[float]:
        seen: list[float] = []

        def latency(rng: random.Random) -> float:
            seen.append(rng.uniform(0, 0.001))
            return seen[-1]

        fake = FakeLinkAI(seed=seed, latency=latency)
        with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
            for _ in range(5):
                client.post("/images/generations", json={})
        return seen

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)
    assert 5 == len(delays(3))


def test_reset_forgets_observations_and_queued_faults_but_keeps_configuration() -> None:
    """reset(): records, attempts, counters and queued faults go; key, credits, rates stay."""
    fake = FakeLinkAI(api_key="sk-x", credits=5)
    fake.fail_randomly(1.0, Fault.status(500))
    fake.fail(Fault.drop(), times=3)
    with httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client:
        client.headers["Authorization"] = "Bearer sk-x"
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/images/generations", json={"model": "gpt-image-2", "prompt": "x"})
        fake.reset()
        assert ([], 0, 0) == (fake.requests, fake.attempts("x"), fake.request_count)
        response = client.post("/images/generations", json={"model": "gpt-image-2", "prompt": "x"})
    assert 500 == response.status_code
    assert ("sk-x", 5) == (fake.api_key, fake.credits)


def test_a_failing_latency_function_is_shown_not_swallowed(fake: FakeLinkAI) -> None:
    """A latency function that raises: the server answers 500 naming it, the transport raises it."""

    def broken(rng: random.Random) -> float:
        raise ZeroDivisionError("bad latency")

    fake.latency = broken
    body = {"model": "gpt-image-2", "prompt": PROMPT}
    with fake.serve() as server, httpx.Client(base_url=server.base_url, verify=TLS) as client:
        response = client.post("/images/generations", json=body)
    assert 500 == response.status_code
    assert "ZeroDivisionError('bad latency')" in response.json()["error"]["message"]
    with (
        httpx.Client(transport=fake.transport(), base_url=fake.base_url) as client,
        pytest.raises(ZeroDivisionError),
    ):
        client.post("/images/generations", json=body)
    assert 0 == fake.in_flight
