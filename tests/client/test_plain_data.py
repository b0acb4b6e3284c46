"""Results are plain data: to_dict/from_dict round-trip through JSON; asdict shows no internals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkai_images import (
    AsyncImageClient,
    BatchItem,
    GeneratedImage,
    ImageClient,
    ImageRequest,
    ImageResponse,
    RateLimitError,
)
from linkai_images.testing import DEFAULT_API_KEY, FakeServer

text = st.text(max_size=40)
images = st.builds(
    GeneratedImage,
    url=st.none() | text,
    b64_json=st.none() | st.text("ABCD+/=", max_size=40),
    revised_prompt=st.none() | text,
)
responses = st.builds(
    ImageResponse,
    data=st.lists(images, max_size=4).map(tuple),
    created=st.none() | st.integers(-(2**53), 2**53),
    model=st.none() | text,
    attempts=st.integers(1, 100),
    elapsed=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    request_id=st.none() | text,
    rate_limit_headers=st.dictionaries(text, text, max_size=3),
)


@given(responses)
def test_a_response_round_trips_through_json(response: ImageResponse) -> None:
    """from_dict(json.loads(json.dumps(to_dict()))) is equal to the response, headers too."""
    back = ImageResponse.from_dict(json.loads(json.dumps(response.to_dict())))
    assert (response, response.rate_limit_headers) == (back, back.rate_limit_headers)


@given(responses, st.integers(0, 10**6), text)
def test_a_batch_item_is_json_data(response: ImageResponse, index: int, prompt: str) -> None:
    """BatchItem.to_dict() goes through json.dumps unchanged, response included."""
    item = BatchItem(index=index, request=ImageRequest(prompt=prompt), response=response)
    data = item.to_dict()
    assert data == json.loads(json.dumps(data))
    assert response == ImageResponse.from_dict(data["response"])


def test_a_failed_item_names_its_error_and_describes_data_images() -> None:
    """The error becomes type/message/status; bytes given as images are described, not embedded."""
    request = ImageRequest(
        prompt="a fox", images=["https://x.test/a.png", Path("b.png"), b"\x89PNG"]
    )
    error = RateLimitError(
        "slow down", response=httpx.Response(429, request=httpx.Request("POST", "http://x.test"))
    )
    data = BatchItem(index=3, request=request, error=error).to_dict()
    assert {
        "index": 3,
        "request": {
            "model": None, "prompt": "a fox",
            "images": ["https://x.test/a.png", "b.png", "<4 bytes>"],
            "size": None, "aspect_ratio": None, "quality": None, "response_format": None,
            "extra_body": None,
        },
        "response": None,
        "error": {"type": "RateLimitError", "message": str(error), "status_code": 429},
    } == data  # fmt: skip


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({}, "'data' must be a list"),
        ({"data": [{"url": 5}]}, "data[0]: 'url' must be a str"),
        ({"data": [], "attempts": "2"}, "'attempts' must be a int"),
        ({"data": [], "elapsed": math.inf}, "'elapsed' must be a finite number"),
        ({"data": ["x"]}, "data[0] must be an object"),
    ],
)
def test_from_dict_says_what_is_wrong(data: dict[str, object], complaint: str) -> None:
    """A malformed dict is a ValueError naming the field."""
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        ImageResponse.from_dict(data)


@pytest.mark.anyio
async def test_asdict_of_a_real_response_is_plain_json(server: FakeServer) -> None:
    """attrs.asdict of a client's response holds its fields only: no store, no downloader."""
    async with AsyncImageClient(DEFAULT_API_KEY, base_url=server.base_url) as client:
        response = await client.generate("a fox", model="gpt-image-2")
    fields = attrs.asdict(response)
    assert ["url", "b64_json", "revised_prompt"] == list(fields["data"][0])
    assert response.to_dict() == json.loads(json.dumps(fields))


def test_blocking_results_are_the_same_plain_data(server: FakeServer) -> None:
    """An ImageClient response is an ImageResponse, equal to its dict form read back."""
    with ImageClient(DEFAULT_API_KEY, base_url=server.base_url) as client:
        response = client.generate("a fox", model="gpt-image-2")
    assert isinstance(response, ImageResponse)
    assert response == ImageResponse.from_dict(response.to_dict())
    assert "store" not in repr(response)
