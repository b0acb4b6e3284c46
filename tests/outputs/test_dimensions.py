"""Pixel sizes read from file headers agree with Pillow's, for every format the API serves."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from linkai_images._outputs.dimensions import image_dimensions


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("size", [(1, 1), (321, 123), (1024, 576)])
def test_dimensions_match_pillow(kind: str, size: tuple[int, int]) -> None:
    """image_dimensions reads (width, height) without decoding the pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format=kind)
    assert size == image_dimensions(buffer.getvalue())


def test_lossless_webp_and_exif_jpeg() -> None:
    """Lossless WebP (VP8L) and a JPEG with a long EXIF block are measured too."""
    webp, jpeg = io.BytesIO(), io.BytesIO()
    Image.new("RGBA", (77, 55)).save(webp, format="WEBP", lossless=True)
    Image.new("RGB", (90, 40)).save(jpeg, format="JPEG", exif=b"Exif\x00\x00" + b"\x00" * 30000)
    assert [(77, 55), (90, 40)] == [
        image_dimensions(webp.getvalue()),
        image_dimensions(jpeg.getvalue()),
    ]


def test_unknown_bytes_have_no_size() -> None:
    """Bytes of no known image type give None."""
    assert None is image_dimensions(b"plain text, not an image")
