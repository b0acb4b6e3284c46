"""Fidelity: the official openai SDK talks to the fake as it would to the platform."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from linkai_images.testing import FakeLinkAI, FakeServer, png_size

pytestmark = pytest.mark.anyio

KEY = "sk-openai-fidelity"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeLinkAI(api_key=KEY).serve() as server:
        yield server


async def test_openai_sdk_generates_and_the_url_serves_the_resolved_size(
    server: FakeServer,
) -> None:
    """AsyncOpenAI with extra_body size=2K, aspect_ratio=16:9 gets a URL to a 2048x1152/16 PNG."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    async with client:
        result = await client.images.generate(
            model="gpt-image-2",
            prompt="a white fox running under the moonlight, watercolour",
            extra_body={"size": "2K", "aspect_ratio": "16:9"},
        )
    assert result.data is not None
    url = result.data[0].url
    assert url is not None
    async with httpx.AsyncClient() as http:
        image = await http.get(url)
    assert (2048 // 16, 1152 // 16) == png_size(image.content)
    (record,) = server.fake.requests
    assert isinstance(record.body, dict)
    assert ("2K", "16:9") == (record.body["size"], record.body["aspect_ratio"])


async def test_openai_sdk_sees_the_platform_errors(server: FakeServer) -> None:
    """The fake's 402 error body reaches the openai SDK as an APIStatusError with its message."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    async with client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.images.generate(model="no-such-model", prompt="a fox")
    assert 402 == caught.value.status_code
    assert "model does not exist or the account may not use it: no-such-model" in str(caught.value)
