"""Nothing untyped escapes: any bytes a server answers give a result or a LinkAIError.

The answers are raw HTTP bytes served by a real loopback socket server, through the
transport each backend uses (aiohttp on asyncio, the SDK's pool on trio), so the
parsers of both HTTP stacks are in the path, not only the SDK's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from helpers import RawOrigin
from hypothesis import given, settings
from hypothesis import strategies as st

from linkai_images import AsyncImageClient, ImageResponse, LinkAIError

pytestmark = pytest.mark.anyio

KEY = "sk-fuzz-0123456789abcdef"

FUZZ = settings(settings.get_profile("fuzz"))


@pytest.fixture(scope="module")
def origin() -> Iterator[RawOrigin]:
    """One raw origin for the module; each example sets its reply."""
    running = RawOrigin()
    yield running
    running.close()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_ITEMS = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["http://cdn.test/a.png", ""]) | _SCALARS,
        "b64_json": st.sampled_from(["iVBORw0KGgo=", ""]) | _SCALARS,
        "revised_prompt": _SCALARS,
    },
)
_BODIES = st.one_of(
    st.lists(_ITEMS, max_size=3).map(lambda items: _json({"data": items})),
    st.builds(
        lambda items, created: _json({"created": created, "data": items}),
        st.lists(_ITEMS, max_size=2),
        _SCALARS,
    ),
    st.builds(
        lambda message, kind: _json({"error": {"message": message, "type": kind}}),
        _SCALARS | st.just(f"key {KEY} rejected"),
        _SCALARS,
    ),
    _JSON_VALUES.map(_json),
    st.integers(1, 5000).map(lambda depth: b"[" * depth),
    st.integers(1, 3000).map(lambda depth: b'{"data":' + b"[" * depth + b"]" * depth + b"}"),
    st.sampled_from(
        [b"", b"<html><title>502</title></html>", b"\xff\xfe", b'{"data": [{"url": 5}]}']
    ),
    st.binary(max_size=64),
)
_STATUSES = st.sampled_from(
    [
        100,
        101,
        103,
        200,
        201,
        202,
        204,
        301,
        302,
        304,
        307,
        400,
        401,
        402,
        404,
        406,
        409,
        429,
        500,
        502,
        503,
        504,
    ]
) | st.integers(0, 1200)
_HEADER_VALUES = st.sampled_from(
    [
        b"application/json",
        b"text/html",
        b"5",
        b"-1",
        b"nan",
        b"1e400",
        b"gzip",
        b"chunked",
        b"close",
        b"Wed, 21 Oct 2015 07:28:10 GMT",
        b"Mon, 01 Jan 99999 00:00:00 GMT",
        b"/elsewhere",
    ]
) | st.binary(max_size=20).filter(lambda value: b"\r" not in value and b"\n" not in value)
_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                b"Content-Type",
                b"Retry-After",
                b"Location",
                b"X-Request-Id",
                b"Content-Encoding",
                b"Connection",
                b"Transfer-Encoding",
                b"Content-Length",
            ]
        ),
        _HEADER_VALUES,
    ),
    max_size=4,
)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """A raw HTTP/1.1 answer: mostly well framed, sometimes not, sometimes noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    status = draw(_STATUSES)
    reason = draw(st.sampled_from([b"OK", b"", b"Whatever"]))
    body = draw(_BODIES)
    headers = draw(_HEADERS)
    framing = draw(st.sampled_from(["length", "length", "none", "wrong", "chunked"]))
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "wrong":
        headers.append((b"Content-Length", str(draw(st.integers(0, 2 * len(body) + 2))).encode()))
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + body


@FUZZ
@given(reply=answers())
async def test_any_answer_gives_a_response_or_a_linkai_error(
    origin: RawOrigin, reply: bytes
) -> None:
    """Whatever the server sends, generate returns an ImageResponse or raises a LinkAIError."""
    origin.reply = reply
    async with AsyncImageClient(
        KEY, base_url=origin.base_url, default_model="gpt-image-2", max_retries=0, timeout=5
    ) as client:
        try:
            outcome: object = await client.generate("a fox")
        except LinkAIError as exc:
            outcome = exc
    if isinstance(outcome, LinkAIError):
        assert KEY not in str(outcome)  # the answers often echo it
    else:
        assert isinstance(outcome, ImageResponse)
        assert all(image.url or image.b64_json for image in outcome.data)
