"""The fake's PNG encoder, its data-URI checks, and the testing package's public face."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import linkai_images.testing
from linkai_images.testing import make_png, png_size
from linkai_images.testing._records import inspect_image

SIGNATURES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xdb",
    "image/gif": b"GIF87a",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBP",
}


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data) chunks, checking every CRC."""
    found = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        found.append((kind, body))
        pos += 12 + length
    return found


@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    rgb=st.tuples(*[st.integers(0, 255)] * 3),
)
def test_make_png_is_a_valid_png_of_that_size_and_colour(
    width: int, height: int, rgb: tuple[int, int, int]
) -> None:
    """Signature, CRCs, IHDR, chunk order and every decompressed pixel are right."""
    data = make_png(width, height, rgb)
    parts = chunks(data)
    assert [b"IHDR", b"IDAT", b"IEND"] == [kind for kind, _ in parts]
    assert struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0) == parts[0][1]
    assert (b"\x00" + bytes(rgb) * width) * height == zlib.decompress(parts[1][1])
    assert (width, height) == png_size(data)


@pytest.mark.parametrize(("width", "height", "rgb"), [(0, 1, (0, 0, 0)), (1, 1, (0, 0, 256))])
def test_make_png_refuses_impossible_images(
    width: int, height: int, rgb: tuple[int, int, int]
) -> None:
    """A zero side or a colour component over 255 is a ValueError."""
    with pytest.raises(ValueError, match=r"out of range|not three ints"):
        make_png(width, height, rgb)


def test_png_size_refuses_other_bytes() -> None:
    """png_size of something that is not a PNG is a ValueError."""
    with pytest.raises(ValueError, match="not a PNG"):
        png_size(b"GIF89a" + b"\x00" * 30)


@given(
    declared=st.sampled_from(sorted(SIGNATURES)),
    actual=st.sampled_from(sorted(SIGNATURES)),
    tail=st.binary(max_size=64),
)
def test_a_data_uri_passes_exactly_when_its_bytes_are_its_declared_type(
    declared: str, actual: str, tail: bytes
) -> None:
    """Any payload is accepted iff its magic bytes match the declared MIME type."""
    data = SIGNATURES[actual] + tail
    image = inspect_image(f"data:{declared};base64,{base64.b64encode(data).decode()}")
    assert (declared == actual) == image.valid
    if image.valid:
        assert (declared, len(data)) == (image.mime_type, image.size)


EXPECTED = {
    "DEFAULT_API_KEY",
    "DEFAULT_BANNED_WORDS",
    "DEFAULT_RECORD_LIMIT",
    "DEFAULT_SCALE",
    "FakeLinkAI",
    "FakeServer",
    "FakeTransport",
    "Fault",
    "Latency",
    "RecordedCdnRequest",
    "RecordedRequest",
    "ReferenceImage",
    "make_png",
    "png_size",
}


def test_testing_exports_exactly_its_public_names_sorted_and_documented() -> None:
    """`linkai_images.testing.__all__` is this sorted set; classes and functions are documented."""
    assert EXPECTED == set(linkai_images.testing.__all__)
    assert sorted(linkai_images.testing.__all__) == linkai_images.testing.__all__
    for name in linkai_images.testing.__all__:
        obj = getattr(linkai_images.testing, name)
        if callable(obj):
            assert obj.__doc__, name
    assert "linkai_images.testing" == linkai_images.testing.FakeLinkAI.__module__
