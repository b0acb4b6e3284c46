"""AsyncImageClient.generate end to end over a real loopback server (the SDK's fake)."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import linkai_images
from linkai_images import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncImageClient,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ContentModerationError,
    InsufficientCreditsError,
    InternalServerError,
    LinkAIError,
    ModelNotAvailableError,
    RateLimitError,
    RequestValidationError,
    RetryEvent,
    ServiceUnavailableError,
)
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = pytest.mark.anyio

KEY = "sk-linkai-test-0123456789"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def fake() -> FakeLinkAI:
    """A fresh fake platform accepting KEY."""
    return FakeLinkAI(api_key=KEY, extra_models={"future-model-9"})


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[AsyncImageClient]:
    """A client of the loopback fake with zero retry backoff."""
    with linkai_images.set_testing():
        async with AsyncImageClient(KEY, base_url=server.base_url) as c:
            yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- configuration -----------------------------------------------------------------


def test_missing_key_error_names_the_variable() -> None:
    """No argument and no LINKAI_API_KEY: the error says how to provide one."""
    with pytest.raises(LinkAIError, match="LINKAI_API_KEY"):
        AsyncImageClient()


async def test_key_and_base_url_come_from_the_environment(
    server: FakeServer, fake: FakeLinkAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LINKAI_API_KEY and LINKAI_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("LINKAI_API_KEY", KEY)
    monkeypatch.setenv("LINKAI_BASE_URL", server.base_url)
    async with AsyncImageClient() as client:
        response = await client.generate("a fox", model="gpt-image-2")
    assert 1 == len(response.data)
    assert f"Bearer {KEY}" == fake.requests[-1].headers["authorization"]


async def test_key_never_appears_in_repr_or_errors(server: FakeServer) -> None:
    """The key is masked in the repr and absent from error messages."""
    async with AsyncImageClient("sk-wrong-secret-key-123", base_url=server.base_url) as client:
        assert "secret" not in repr(client)
        with pytest.raises(AuthenticationError) as info:
            await client.generate("a fox", model="gpt-image-2")
    assert "sk-wrong-secret-key-123" not in str(info.value)
    assert "sk-wrong-secret-key-123" not in repr(info.value)


async def test_closed_client_refuses_use(server: FakeServer) -> None:
    """After aclose() a call raises ClientClosedError; aclose is idempotent."""
    client = AsyncImageClient(KEY, base_url=server.base_url)
    await client.aclose()
    await client.aclose()
    assert client.is_closed
    with pytest.raises(ClientClosedError, match="closed"):
        await client.generate("a fox", model="gpt-image-2")


# -- requests and responses -----------------------------------------------------------


async def test_only_given_fields_are_sent(client: AsyncImageClient, fake: FakeLinkAI) -> None:
    """None arguments are left out of the JSON body; given ones are sent as is."""
    await client.generate("a fox", model="gpt-image-2", size="2K", aspect_ratio="16:9")
    assert {
        "model": "gpt-image-2",
        "prompt": "a fox",
        "size": "2K",
        "aspect_ratio": "16:9",
    } == fake.requests[-1].body


async def test_response_carries_images_attempts_timing_and_request_id(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """ImageResponse has the URL, 1 attempt, a positive elapsed time and the request id."""
    response = await client.generate("a fox", model="gpt-image-2")
    assert 1 == response.attempts
    assert response.elapsed > 0
    assert fake.requests[-1].request_id == response.request_id
    assert response.data[0].url is not None
    assert httpx.URL(response.data[0].url).port != client.base_url.port
    assert "gpt-image-2" == response.model
    assert isinstance(response.created, int)


async def test_default_model_is_used_and_missing_model_is_refused(server: FakeServer) -> None:
    """default_model fills in; with neither, a RequestValidationError says what to do."""
    async with AsyncImageClient(
        KEY, base_url=server.base_url, default_model="doubao-seedream-4.5"
    ) as c:
        assert "doubao-seedream-4.5" == (await c.generate("a fox")).model
    async with AsyncImageClient(KEY, base_url=server.base_url) as c:
        with pytest.raises(RequestValidationError, match="no model"):
            await c.generate("a fox")


async def test_bad_values_are_refused_before_sending(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A size outside the model's table fails locally; nothing reaches the server."""
    with pytest.raises(RequestValidationError, match="choose one of 1K, 2K, 4K"):
        await client.generate("a fox", model="gpt-image-2", size="3K")
    with pytest.raises(RequestValidationError, match="prompt is empty"):
        await client.generate("   ", model="gpt-image-2")
    with pytest.raises(RequestValidationError, match="at most 3"):
        await client.generate("a fox", model="gemini-2.5-flash-image", images=[PNG] * 4)
    assert 0 == fake.request_count


async def test_unknown_model_passes_through_unvalidated(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A model code the SDK does not know is sent as given, fields unchecked."""
    await client.generate("a fox", model="future-model-9", size="9K")
    assert "9K" == fake.requests[-1].body["size"]  # type: ignore[index]


async def test_openai_pixel_size_is_sent_as_tier_and_ratio(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """size='2048x1152' goes out as 2K at 16:9, the platform's form."""
    await client.generate("a fox", model="gpt-image-2", size="2048x1152")
    body = fake.requests[-1].body
    assert ("2K", "16:9") == (body["size"], body["aspect_ratio"])  # type: ignore[index]


async def test_reference_images_are_encoded_as_sniffed_data_uris(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A path, bytes, a file object and a URL arrive as data URIs (PNG sniffed) or as given."""
    path = tmp_path / "ref.bin"
    path.write_bytes(PNG)
    url = "https://example.com/a.jpg"
    await client.generate(
        "make it snowy", model="gpt-image-2", images=[path, str(path), PNG, io.BytesIO(PNG), url]
    )
    recorded = fake.requests[-1].images
    assert ["image/png"] * 4 == [image.mime_type for image in recorded[:4]]
    assert url == recorded[4].url
    assert all(image.valid for image in recorded)


async def test_images_are_encoded_once_and_reused_on_retries(
    client: AsyncImageClient, fake: FakeLinkAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 503s then success: three identical bodies sent, the image encoded once."""
    from linkai_images._inputs import local

    calls = 0
    original = local.data_uri_ascii

    def counting(*args: Any, **kwargs: Any) -> bytes:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(local, "data_uri_ascii", counting)
    fake.fail(Fault.status(503), prompt="p", times=2)
    response = await client.generate("p", model="gpt-image-2", images=[PNG])
    assert (3, 1) == (response.attempts, calls)
    bodies = [r.body for r in fake.requests]
    assert bodies[0] == bodies[1] == bodies[2]


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, ModelNotAvailableError),
        (406, InsufficientCreditsError),
        (409, ContentModerationError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, ServiceUnavailableError),
    ],
)
async def test_statuses_map_to_their_classes_with_message_and_type(
    server: FakeServer, fake: FakeLinkAI, status: int, cls: type[APIStatusError]
) -> None:
    """Each documented status raises its class, carrying the server's message and type."""
    fake.fail(Fault.status(status, message=f"boom {status}"), times=10)
    async with AsyncImageClient(KEY, base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(cls) as info:
            await client.generate("a fox", model="gpt-image-2")
    assert (status, f"boom {status}", 1) == (
        info.value.status_code,
        info.value.message,
        info.value.attempts,
    )
    assert info.value.type is not None
    assert isinstance(info.value.response, httpx.Response)
    assert b'"prompt":"a fox"' in info.value.response.request.content


async def test_platform_rules_come_back_as_typed_errors(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """The fake's own 402, 406 and 409 decisions arrive as their classes."""
    with pytest.raises(ModelNotAvailableError):
        await client.generate("a fox", model="not-a-model-at-all")
    with pytest.raises(ContentModerationError):
        await client.generate("something forbidden", model="gpt-image-2")
    fake.credits = 0
    with pytest.raises(InsufficientCreditsError):
        await client.generate("a fox", model="gpt-image-2")


async def test_html_and_empty_error_bodies_give_the_right_class(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """A proxy's HTML 502 and an empty 503 still map to their classes with a message."""
    fake.fail(Fault.html_error(502), times=1)
    fake.fail(Fault.empty_error(503), times=1)
    async with AsyncImageClient(KEY, base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(InternalServerError) as html:
            await client.generate("a fox", model="gpt-image-2")
        with pytest.raises(ServiceUnavailableError) as empty:
            await client.generate("a fox", model="gpt-image-2")
    assert "HTML page" in html.value.message
    assert "empty body" in empty.value.message


async def test_malformed_success_body_is_a_linkai_error(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A 200 with broken JSON raises APIResponseValidationError, not a json error."""
    fake.fail(Fault.malformed_json())
    with pytest.raises(APIResponseValidationError, match="not JSON"):
        await client.generate("a fox", model="gpt-image-2")


async def test_unknown_response_fields_are_ignored() -> None:
    """Extra fields in the body and in each image are ignored; revised_prompt is kept."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "created": 5,
                "usage": {"tokens": 1},
                "data": [{"url": "https://cdn.test/a.png", "revised_prompt": "r", "x": 1}],
            },
        )

    async with AsyncImageClient(
        KEY, base_url="http://api.test/v1", transport=httpx.MockTransport(handler)
    ) as client:
        response = await client.generate("a fox", model="gpt-image-2")
    assert ("https://cdn.test/a.png", "r", 5) == (
        response.data[0].url,
        response.data[0].revised_prompt,
        response.created,
    )


# -- retries ---------------------------------------------------------------------------


async def test_503_with_retry_after_is_retried_and_reported(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """503s are retried; each retry reaches the hook with its cause and Retry-After."""
    events: list[RetryEvent] = []
    fake.fail(Fault.status(503, retry_after=7), prompt="p", times=2)
    with linkai_images.set_testing():
        async with AsyncImageClient(KEY, base_url=server.base_url, on_retry=events.append) as c:
            response = await c.generate("p", model="gpt-image-2")
    assert 3 == response.attempts
    assert 3 == fake.attempts("p")
    assert [1, 2] == [e.attempt for e in events]
    assert all(isinstance(e.cause, ServiceUnavailableError) for e in events)
    assert 7.0 == events[0].cause.retry_after  # type: ignore[attr-defined]


async def test_max_retries_means_n_plus_one_attempts(server: FakeServer, fake: FakeLinkAI) -> None:
    """max_retries=2 makes exactly 3 attempts, and the error says so."""
    fake.fail(Fault.status(503), prompt="p", times=10)
    with linkai_images.set_testing():
        async with AsyncImageClient(KEY, base_url=server.base_url, max_retries=2) as c:
            with pytest.raises(ServiceUnavailableError) as info:
                await c.generate("p", model="gpt-image-2")
    assert (3, 3) == (info.value.attempts, fake.attempts("p"))


async def test_dropped_connection_after_sending_is_not_retried(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """The platform may bill a request whose answer was lost: one attempt, marked as sent."""
    fake.fail(Fault.drop(), prompt="p", times=1)
    with pytest.raises(APIConnectionError) as info:
        await client.generate("p", model="gpt-image-2")
    assert (1, True, 1) == (info.value.attempts, info.value.request_sent, fake.attempts("p"))
    assert info.value.request is not None
    assert b'"prompt":"p"' in info.value.request.content


async def test_dropped_connection_is_retried_when_opted_in(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """retry_unsent_only=False retries even requests that may have been billed."""
    fake.fail(Fault.drop(), prompt="p", times=1)
    policy = linkai_images.RetryPolicy(retry_unsent_only=False)
    with linkai_images.set_testing():
        async with AsyncImageClient(KEY, base_url=server.base_url, retry_policy=policy) as c:
            response = await c.generate("p", model="gpt-image-2")
    assert 2 == response.attempts


async def test_connection_refused_is_retried_as_never_sent() -> None:
    """Nothing listening: every attempt fails before sending and is retried, then reported."""
    with linkai_images.set_testing():
        async with AsyncImageClient(
            KEY, base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2
        ) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.generate("a fox", model="gpt-image-2")
    assert (3, False) == (info.value.attempts, info.value.request_sent)


async def test_read_timeout_is_a_timeout_error_and_not_retried(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """A server slower than the timeout gives APITimeoutError after one attempt."""
    fake.fail(Fault.hang(30), prompt="p")
    async with AsyncImageClient(KEY, base_url=server.base_url, timeout=0.3) as c:
        with pytest.raises(APITimeoutError) as info:
            await c.generate("p", model="gpt-image-2")
    assert (1, True) == (info.value.attempts, info.value.request_sent)


async def test_deadline_bounds_the_whole_call(server: FakeServer, fake: FakeLinkAI) -> None:
    """deadline= stops a call that would otherwise wait far longer."""
    fake.fail(Fault.hang(30), prompt="p")
    async with AsyncImageClient(KEY, base_url=server.base_url, deadline=0.3) as c:
        with pytest.raises(APITimeoutError, match="deadline"):
            await c.generate("p", model="gpt-image-2")


async def test_retries_are_logged_without_the_key(
    server: FakeServer, fake: FakeLinkAI, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry leaves a warning on the linkai_images logger that never holds the key."""
    caplog.set_level(logging.DEBUG)
    fake.fail(Fault.status(503), prompt="p", times=1)
    with linkai_images.set_testing():
        async with AsyncImageClient(KEY, base_url=server.base_url) as c:
            await c.generate("p", model="gpt-image-2")
    assert "retrying gpt-image-2 request after attempt 1" in caplog.text
    assert KEY not in caplog.text


# -- concurrency and downloads ----------------------------------------------------------


async def test_max_concurrency_bounds_in_flight_requests_across_tasks(
    server: FakeServer, fake: FakeLinkAI
) -> None:
    """With 40 tasks and max_concurrency=8, the server never sees more than 8 at once."""
    fake.latency = 0.05
    async with (
        AsyncImageClient(KEY, base_url=server.base_url, max_concurrency=8) as client,
        anyio.create_task_group() as tg,
    ):
        for i in range(40):
            tg.start_soon(lambda i=i: client.generate(f"fox {i}", model="gpt-image-2"))
    assert 8 == fake.max_in_flight
    assert 40 == fake.request_count


async def test_read_and_save_download_without_the_key(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """An image downloads as PNG bytes; the CDN never sees an Authorization header."""
    response = await client.generate("a fox", model="gpt-image-2", size="1K", aspect_ratio="1:1")
    data = await response.data[0].read()
    assert data.startswith(b"\x89PNG")
    saved = await response.data[0].save(tmp_path)
    assert saved.parent == tmp_path
    assert saved.suffix == ".png"
    assert data == saved.read_bytes()
    assert fake.cdn_requests
    assert all("authorization" not in r.headers for r in fake.cdn_requests)


async def test_oversized_reference_file_is_refused_before_sending(
    server: FakeServer, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A file over max_image_bytes fails the check, naming its size and the cap; nothing sent."""
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * 5000)
    async with AsyncImageClient(KEY, base_url=server.base_url, max_image_bytes=1000) as client:
        with pytest.raises(RequestValidationError, match="over the cap of 1,000 bytes"):
            await client.generate("a fox", model="gpt-image-2", images=[big])
    assert 0 == fake.request_count
