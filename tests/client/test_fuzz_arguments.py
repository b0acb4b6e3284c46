"""Nothing untyped escapes from the arguments: any call gives a result or a documented error.

``generate``, ``generate_many`` and ``as_completed`` take arbitrary values for every field
(text with lone surrogates, thousands of digits, nested or unserialisable ``extra_body``,
junk reference images); each call ends in an ``ImageResponse`` or a ``LinkAIError``: the
fake's own 400 or 402, or ``RequestValidationError`` (also a ``ValueError``) for a bad
argument. The API documents ``TypeError``/``ValueError`` for misuse of the client itself
(``concurrency=0``, a non-iterable batch); no value of a request field gets one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkai_images import (
    AsyncImageClient,
    BatchItem,
    ImageResponse,
    LinkAIError,
    RequestValidationError,
)
from linkai_images.testing import FakeLinkAI

pytestmark = pytest.mark.anyio

FUZZ = settings(settings.get_profile("fuzz"))

_TEXT = st.text(max_size=30) | st.sampled_from(
    ["a\ud800b", "\udcff", "1" * 5000 + "x1", "1" * 5000]
)
_FIELD = st.none() | _TEXT | st.integers() | st.sampled_from([b"2K", 2.5, ["1K"]])
_SIZES = _FIELD | st.sampled_from(["1K", "2K", "4K", "512", "2048x1152", "1024x1024", "99999x1"])
_MODELS = (
    st.none()
    | st.sampled_from(
        ["gpt-image-2", "doubao-seedream-4.5", "gemini-2.5-flash-image", "not-a-model", ""]
    )
    | _TEXT
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_EXTRA = st.one_of(
    st.none(),
    st.dictionaries(_TEXT, _JSONISH, max_size=3),
    st.integers(1, 5000).map(lambda depth: {"deep": _nested(depth)}),
    st.sampled_from(
        [{"prompt": "twice"}, {"x": object()}, {1: "key"}, {"x": {1, 2}}, [("a", 1)], "x"]
    ),
)
_IMAGES = st.none() | st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            ["https://example.test/a.png", "ftp://x/y", "data:image/png;base64,iVBO", "data:,x"]
        ),
        st.text(max_size=20).map(lambda text: f"missing-{text}"),
        st.builds(lambda data: "data:image/png;base64," + data, st.text(max_size=20)),
        st.integers(),
        st.none(),
    ),
    max_size=3,
)
_REQUESTS = st.fixed_dictionaries(
    {"prompt": _FIELD | st.just("a fox")},
    optional={
        "model": _MODELS,
        "size": _SIZES,
        "aspect_ratio": _FIELD | st.sampled_from(["16:9", "1:1", "7:3"]),
        "quality": _FIELD | st.sampled_from(["high", "hd"]),
        "response_format": _FIELD | st.sampled_from(["url", "b64_json"]),
        "extra_body": _EXTRA,
        "images": _IMAGES,
    },
)


def client_on(fake: FakeLinkAI) -> AsyncImageClient:
    """A client on the in-process fake that accepts any model code."""
    return AsyncImageClient(
        fake.api_key,
        base_url=fake.base_url,
        transport=fake.transport(),
        default_model="gpt-image-2",
        max_retries=0,
    )


def assert_typed(outcome: object) -> None:
    """A result or a LinkAIError (bad arguments: RequestValidationError); nothing else."""
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, LinkAIError), repr(outcome)
        return
    assert isinstance(outcome, ImageResponse)


@FUZZ
@given(fields=_REQUESTS)
async def test_any_arguments_to_generate_give_a_response_or_a_typed_error(
    fake: FakeLinkAI, fields: dict[str, Any]
) -> None:
    """generate(**anything) returns an ImageResponse or raises a LinkAIError or argument error."""
    async with client_on(fake) as client:
        try:
            outcome: object = await client.generate(**fields)
        except Exception as exc:
            outcome = exc
    assert_typed(outcome)


@FUZZ
@given(batch=st.lists(_REQUESTS | _FIELD, min_size=1, max_size=3))
async def test_any_batch_gives_typed_results_in_both_batch_apis(
    fake: FakeLinkAI, batch: list[Any]
) -> None:
    """generate_many and as_completed end every request in a response or a typed error."""
    async with client_on(fake) as client:
        try:
            results: list[object] = list(await client.generate_many(batch, return_exceptions=True))
        except RequestValidationError:  # a batch with an invalid request is refused whole
            results = []
        for result in results:
            assert_typed(result)
        async with client.as_completed(batch) as items:
            async for item in items:
                assert isinstance(item, BatchItem)
                assert_typed(item.response if item.error is None else item.error)
