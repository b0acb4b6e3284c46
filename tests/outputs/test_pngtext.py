"""PNG provenance: iTXt chunks written without Pillow, pixels untouched, read back."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from linkai_images._outputs.pngtext import (
    TextInserter,
    add_png_text,
    itxt_chunk,
    png_dimensions,
    read_png_text,
)
from linkai_images.testing._png import make_png

ENTRIES = {"Description": "a red fox — 狐狸, <script>", "linkai-images": '{"model": "gpt-image-2"}'}


def chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order."""
    types, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        types.append(kind)
        offset += 12 + length
    return types


def test_text_is_read_back_in_utf8() -> None:
    """Every entry added is read back exactly, non-ASCII included."""
    stamped = add_png_text(make_png(8, 4), ENTRIES)
    assert ENTRIES == read_png_text(stamped)


def test_chunks_go_before_the_pixels_with_right_crcs() -> None:
    """The iTXt chunks sit between IHDR and the first IDAT; every CRC checks out."""
    stamped = add_png_text(make_png(8, 4), ENTRIES)
    assert [b"IHDR", b"iTXt", b"iTXt", b"IDAT", b"IEND"] == chunk_types(stamped)


def test_pixels_and_other_chunks_are_untouched() -> None:
    """Removing the added chunks gives back the original file byte for byte."""
    original = make_png(16, 9, (10, 200, 30))
    stamped = add_png_text(original, ENTRIES)
    added = b"".join(itxt_chunk(k, v) for k, v in ENTRIES.items())
    assert original == stamped.replace(added, b"", 1)
    assert len(original) + len(added) == len(stamped)


def test_pillow_reads_the_text_and_the_same_pixels() -> None:
    """An independent decoder sees the text and identical pixels."""
    original = make_png(5, 3, (1, 2, 3))
    stamped = add_png_text(original, ENTRIES)
    with Image.open(io.BytesIO(stamped)) as image, Image.open(io.BytesIO(original)) as before:
        assert ENTRIES == dict(image.text)
        assert before.tobytes() == image.tobytes()


@given(st.integers(min_value=1, max_value=97))
def test_streamed_in_any_pieces_gives_the_same_file(piece: int) -> None:
    """Fed in pieces of any size, the inserter writes what the one-shot call writes."""
    original = make_png(7, 7)
    inserter = TextInserter(ENTRIES)
    parts = [inserter.feed(original[i : i + piece]) for i in range(0, len(original), piece)]
    assert add_png_text(original, ENTRIES) == b"".join(parts) + inserter.finish()


def test_other_formats_pass_through_unchanged() -> None:
    """JPEG bytes (or anything not PNG) are left exactly as they are."""
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 50
    assert jpeg == add_png_text(jpeg, ENTRIES)


def test_a_truncated_png_is_left_as_it_came() -> None:
    """A file cut off before its pixels is not changed (nothing is invented)."""
    cut = make_png(4, 4)[:20]
    assert cut == add_png_text(cut, ENTRIES)


@pytest.mark.parametrize("keyword", ["", " lead", "two  spaces", "x" * 80, "naïve→"])
def test_bad_keywords_are_refused(keyword: str) -> None:
    """Keywords outside the PNG rules raise ValueError naming the keyword."""
    with pytest.raises(ValueError, match="keyword"):
        itxt_chunk(keyword, "text")


def test_dimensions_come_from_the_header() -> None:
    """png_dimensions reads width and height from IHDR."""
    assert (640, 360) == png_dimensions(make_png(640, 360))
