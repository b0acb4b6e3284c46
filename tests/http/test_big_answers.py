"""Images answered inline (b64_json): parsed and decoded in worker threads, in slices."""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import ThreadedOrigin
from hypothesis import given, settings
from hypothesis import strategies as st

from linkai_images import AsyncImageClient
from linkai_images._http import answer, endpoint
from linkai_images._inputs.b64 import b64decode_sliced
from linkai_images._outputs import download

pytestmark = pytest.mark.anyio

IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(3 * 2**20)
ANSWER = json.dumps(
    {"created": 1, "data": [{"b64_json": base64.b64encode(IMAGE).decode(), "revised_prompt": "a"}]}
).encode()


class _InlineAPI(ThreadedOrigin):
    """A generation endpoint answering every POST with ``ANSWER`` (a 4 MB JSON body)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def origin() -> Iterator[str]:
    """The inline-answer endpoint on loopback; yields its base URL."""
    with _InlineAPI() as base:
        yield base + "/v1"


def recording(threads: list[int], real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, noting the thread each call runs in."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    return wrapper


async def test_a_big_inline_answer_is_parsed_and_decoded_off_the_event_loop(
    origin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4 MB answer: the JSON parse and the base64 decode both run in worker threads."""
    parsed: list[int] = []
    decoded: list[int] = []
    monkeypatch.setattr(endpoint, "loads_sliced", recording(parsed, answer.loads_sliced))
    monkeypatch.setattr(download, "b64decode_sliced", recording(decoded, b64decode_sliced))
    async with AsyncImageClient("sk-test", base_url=origin, max_retries=0) as client:
        response = await client.generate("a fox", model="gpt-image-2", response_format="b64_json")
        data = await response.data[0].read()
    loop = threading.get_ident()
    assert (IMAGE, "a") == (data, response.data[0].revised_prompt)
    assert (1, 1) == (len(parsed), len(decoded))
    assert loop not in parsed + decoded


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
big_strings = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=60, max_size=200
) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=", min_size=60, max_size=300)


@settings(max_examples=200, deadline=None)
@given(json_values, st.lists(big_strings, max_size=4), st.booleans())
def test_sliced_parse_equals_json_loads(value: Any, bigs: list[str], as_key: bool) -> None:
    """Any JSON with long strings (escaped, unicode, as keys or values) parses as json.loads."""
    document = {"data": [value, *bigs], **({bigs[0]: 1} if as_key and bigs else {})}
    content = json.dumps(document, ensure_ascii=False).encode()
    saved = answer._BIG_STRING, answer._SLICE
    answer._BIG_STRING, answer._SLICE = 50, 64  # small thresholds, so small examples use them
    try:
        assert json.loads(content) == answer.loads_sliced(content)
    finally:
        answer._BIG_STRING, answer._SLICE = saved


@pytest.mark.parametrize(
    "content",
    [b'{"data": ["' + b"A" * 70_000 + b'\x01"]}', b'{"data": ["' + b"A" * 70_000, b"[1,]"],
)
def test_sliced_parse_refuses_what_json_loads_refuses(content: bytes) -> None:
    """A raw control character, an unterminated string, a trailing comma: ValueError."""
    with pytest.raises(json.JSONDecodeError):
        answer.loads_sliced(content)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=40))
def test_sliced_b64decode_equals_a_strict_decode(data: bytes, quarters: int) -> None:
    """Any bytes round-trip through base64 at any slice size."""
    text = base64.b64encode(data).decode()
    assert data == b64decode_sliced(text, slice_chars=4 * quarters)


@pytest.mark.parametrize("text", ["QUJD=QUJD", "QUJ", "QU!D", "QQ==QUJD"])
def test_sliced_b64decode_refuses_invalid_base64(text: str) -> None:
    """Padding in the middle, a bad length, a bad character: binascii.Error."""
    with pytest.raises(binascii.Error):
        b64decode_sliced(text, slice_chars=4)


def test_a_big_string_is_copied_in_bounded_slices_into_an_equal_str(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4 MB base64 value: copied in slices of at most 256 KiB, and the str equals json.loads'."""
    sizes: list[int] = []
    real_copy = answer._Filler.copy

    def copy(self: answer._Filler, into: int, start: int, size: int) -> None:
        sizes.append(size)
        real_copy(self, into, start, size)

    monkeypatch.setattr(answer._Filler, "copy", copy)
    parsed = answer.loads_sliced(ANSWER)
    value = parsed["data"][0]["b64_json"]
    assert json.loads(ANSWER) == parsed
    assert (str, hash(base64.b64encode(IMAGE).decode())) == (type(value), hash(value))
    assert len(value) == sum(sizes)
    assert answer._SLICE >= max(sizes)


def test_a_big_string_with_a_raw_control_character_is_refused_as_json_loads_does() -> None:
    """A control byte deep inside a 300 KB string: the same error as json.loads, nothing built."""
    content = b'{"data": ["' + b"A" * 300_000 + b'\x07"]}'
    with pytest.raises(json.JSONDecodeError):
        answer.loads_sliced(content)
