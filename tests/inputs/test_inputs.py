"""Reference images: each accepted kind, each refusal, the sliced base64, the loop kept free."""

from __future__ import annotations

import array
import base64
import binascii
import contextlib
import functools
import io
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from linkai_images import DEFAULT_MAX_IMAGE_BYTES, RequestValidationError
from linkai_images._inputs import b64 as _b64
from linkai_images._inputs import images as _inputs
from linkai_images._inputs import local as _local
from linkai_images._inputs.b64 import b64_decoded_size, b64_error, b64encode_sliced
from linkai_images._inputs.images import ImageInput, check_image_inputs, encode_image_inputs
from linkai_images._inputs.sniff import sniff_mime

pytestmark = pytest.mark.anyio

# The function-scoped autouse fixture only resets LINKAI_* variables: safe to share.
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}


# --- images made here ------------------------------------------------------------------


def png_by_hand(width: int = 2, height: int = 1) -> bytes:
    """A valid grey PNG built with struct and zlib, no Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


#: The classic 1x1 transparent GIF, written out byte by byte.
GIF_BY_HAND = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
#: Magic-number stubs: what the sniffer looks at, and nothing more.
JPEG_STUB = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"
WEBP_STUB = b"RIFF\x24\x00\x00\x00WEBPVP8 "


@functools.lru_cache
def pillow_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    """A real image file of the given Pillow format."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def parse(uri: str) -> tuple[str, bytes]:
    """(mime, decoded bytes) of a data URI, decoded strictly."""
    header, _, payload = uri.partition(",")
    assert header.startswith("data:")
    assert header.endswith(";base64")
    return header[5:-7], base64.b64decode(payload, validate=True)


def refused(items: Any, *needles: str, max_bytes: int | None = None) -> RequestValidationError:
    """Assert that the check refuses ``items`` with a message holding every needle."""
    with pytest.raises(RequestValidationError) as info:
        check_image_inputs(items, max_bytes=max_bytes)
    for needle in needles:
        assert needle in str(info.value)
    return info.value


async def encode_refused(
    items: Any, *needles: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
) -> RequestValidationError:
    """Assert that encoding refuses ``items`` with a message holding every needle."""
    with pytest.raises(RequestValidationError) as info:
        await encode_image_inputs(items, max_bytes=max_bytes)
    for needle in needles:
        assert needle in str(info.value)
    return info.value


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    """A PNG file (Pillow's) at a path with a space and a non-ASCII letter."""
    path = tmp_path / "ref image ü.png"
    path.write_bytes(pillow_bytes("PNG"))
    return path


@pytest.fixture
def opened_files(png_file: Path) -> Iterator[tuple[io.BufferedReader, io.FileIO]]:
    """The PNG file opened buffered and unbuffered, in binary mode."""
    with open(png_file, "rb") as buffered, open(png_file, "rb", buffering=0) as raw:
        yield buffered, raw


# --- sniffing --------------------------------------------------------------------------


@pytest.mark.parametrize("mime", list(FORMATS))
def test_sniff_recognises_real_files_of_each_type(mime: str) -> None:
    """Pillow-made PNG, JPEG, WEBP and GIF files are each sniffed as their type."""
    assert mime == sniff_mime(pillow_bytes(FORMATS[mime]))


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png_by_hand(), "image/png"),
        (GIF_BY_HAND, "image/gif"),
        (b"GIF87a" + b"\x00" * 6, "image/gif"),
        (JPEG_STUB, "image/jpeg"),
        (WEBP_STUB, "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"BM" + b"\x00" * 10, None),
        (b"<svg xmlns=", None),
        (b"", None),
    ],
)
def test_sniff_reads_magic_numbers_only(data: bytes, mime: str | None) -> None:
    """Hand-made signatures decide the type; RIFF/WAVE, BMP, SVG and nothing are no image."""
    assert mime == sniff_mime(data)


# --- accepted kinds --------------------------------------------------------------------


async def test_urls_are_sent_as_given() -> None:
    """http(s) URLs, any case of scheme, with query strings, come back unchanged."""
    urls = [
        "https://cdn.example/a.png",
        "HTTP://example.com/x.jpg?size=2&v=1#f",
        "http://[::1]:8/a",
    ]
    check_image_inputs(urls)
    assert urls == await encode_image_inputs(urls)


@pytest.mark.parametrize("mime", list(FORMATS))
async def test_data_uris_of_each_type_are_sent_as_given(mime: str) -> None:
    """A well-formed data URI whose bytes match its declared type is passed through."""
    uri = data_uri(mime, pillow_bytes(FORMATS[mime]))
    check_image_inputs([uri])
    assert [uri] == await encode_image_inputs([uri])


@pytest.mark.parametrize("mime", list(FORMATS))
async def test_raw_bytes_become_data_uris_with_the_sniffed_type(mime: str) -> None:
    """bytes, bytearray and memoryview of an image are encoded with the type of their bytes."""
    data = pillow_bytes(FORMATS[mime])
    items: list[ImageInput] = [data, bytearray(data), memoryview(data)]
    check_image_inputs(items)
    encoded = await encode_image_inputs(items)
    assert [(mime, data)] * 3 == [parse(uri) for uri in encoded]


async def test_hand_made_images_are_accepted() -> None:
    """Images built byte by byte (no Pillow) are sniffed and encoded exactly."""
    items = [png_by_hand(), GIF_BY_HAND, JPEG_STUB, WEBP_STUB]
    encoded = await encode_image_inputs(items)
    expected = ["image/png", "image/gif", "image/jpeg", "image/webp"]
    assert list(zip(expected, items, strict=True)) == [parse(uri) for uri in encoded]


async def test_memoryview_of_another_format_is_read_as_bytes() -> None:
    """A contiguous memoryview with a non-byte format is cast to bytes, not refused."""
    data = png_by_hand(3, 3)
    data += b"\x00" * (-len(data) % 4)
    view = memoryview(array.array("I", data))
    assert [("image/png", data)] == [parse(uri) for uri in await encode_image_inputs([view])]


async def test_paths_as_str_and_pathlike_are_read_and_encoded(png_file: Path) -> None:
    """A path given as str, as Path and as a bytes-returning PathLike is read and encoded."""

    class BytesPath:
        def __fspath__(self) -> bytes:
            return os.fsencode(png_file)

    items: list[Any] = [str(png_file), png_file, BytesPath()]
    check_image_inputs(items)
    encoded = await encode_image_inputs(items)
    assert [("image/png", pillow_bytes("PNG"))] * 3 == [parse(uri) for uri in encoded]


async def test_path_content_decides_the_type_not_the_name(tmp_path: Path) -> None:
    """A JPEG saved under a .png name is sent as image/jpeg."""
    path = tmp_path / "looks.png"
    path.write_bytes(pillow_bytes("JPEG"))
    [uri] = await encode_image_inputs([path])
    assert "image/jpeg" == parse(uri)[0]


async def test_binary_file_objects_are_read_from_their_position(
    opened_files: tuple[io.BufferedReader, io.FileIO],
) -> None:
    """BytesIO, buffered and unbuffered files are read from where they stand, once."""
    data = pillow_bytes("PNG")
    prefixed = io.BytesIO(b"junk" + data)
    prefixed.seek(4)
    buffered, raw = opened_files
    encoded = await encode_image_inputs([io.BytesIO(data), prefixed, buffered, raw])
    assert [("image/png", data)] * 4 == [parse(uri) for uri in encoded]


async def test_a_reader_returning_short_chunks_is_read_to_the_end() -> None:
    """A file object whose read(n) returns less than n is read until it returns b''."""
    data = pillow_bytes("GIF")

    class Trickle:
        def __init__(self) -> None:
            self.rest = data

        def read(self, size: int = -1, /) -> bytes:
            piece, self.rest = self.rest[:3], self.rest[3:]
            return piece

    assert [("image/gif", data)] == [parse(u) for u in await encode_image_inputs([Trickle()])]


async def test_pil_images_are_saved_as_png_unless_opened_from_an_allowed_format(
    tmp_path: Path,
) -> None:
    """New images go as PNG; opened PNG/JPEG/WEBP/GIF keep their format; a BMP becomes PNG."""
    with contextlib.ExitStack() as stack:
        items = [Image.new("RGB", (5, 4), "red")]
        for fmt in ("JPEG", "WEBP", "GIF", "BMP"):
            path = tmp_path / f"x.{fmt.lower()}"
            path.write_bytes(pillow_bytes(fmt))
            items.append(stack.enter_context(Image.open(path)))
        check_image_inputs(items)
        encoded = await encode_image_inputs(items)
    mimes = [parse(uri)[0] for uri in encoded]
    assert ["image/png", "image/jpeg", "image/webp", "image/gif", "image/png"] == mimes
    for uri, original in zip(encoded, items, strict=True):
        with Image.open(io.BytesIO(parse(uri)[1])) as decoded:
            assert original.size == decoded.size


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "CMYK", "YCbCr", "F", "I;16"])
async def test_pil_images_in_any_mode_become_decodable_pngs(mode: str) -> None:
    """Modes PNG cannot store (CMYK, YCbCr, F) are converted; the result opens in Pillow."""
    image = Image.new(mode, (3, 2))
    [uri] = await encode_image_inputs([image])
    mime, data = parse(uri)
    assert "image/png" == mime
    with Image.open(io.BytesIO(data)) as decoded:
        assert (3, 2) == decoded.size


async def test_an_animated_gif_keeps_its_frames() -> None:
    """An opened animated GIF is sent with every frame, not just the first."""
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    buffer.seek(0)
    with Image.open(buffer) as animated:
        assert 3 == animated.n_frames
        [uri] = await encode_image_inputs([animated])
    with Image.open(io.BytesIO(parse(uri)[1])) as decoded:
        assert 3 == decoded.n_frames


def test_a_single_item_is_a_list_of_one(png_file: Path) -> None:
    """A lone URL, path or bytes is checked as one item, not as characters."""
    check_image_inputs("https://example.com/a.png")
    check_image_inputs(png_file)  # type: ignore[arg-type]
    check_image_inputs(png_by_hand())  # type: ignore[arg-type]


async def test_encoding_is_pure_and_repeatable(png_file: Path) -> None:
    """Two calls on the same inputs give equal plain strings; the inputs are untouched."""
    items: list[Any] = ["https://e.x/a.png", png_file, png_by_hand()]
    first = await encode_image_inputs(items)
    second = await encode_image_inputs(items)
    assert first == second
    assert all(type(uri) is str for uri in first)


def test_pil_is_never_imported_by_the_inputs_module() -> None:
    """Importing and using the inputs code leaves Pillow unimported (lazy integration)."""
    code = (
        "import sys, linkai_images._inputs.images as m\n"
        "m.check_image_inputs(['https://e.x/a.png', b'GIF89a......'])\n"
        "try:\n    m.check_image_inputs([object()])\nexcept ValueError:\n    pass\n"
        "assert 'PIL' not in sys.modules, sorted(n for n in sys.modules if 'PIL' in n)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- refusals: the cheap check ---------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        (5, "int 5 is not a reference image"),
        (None, "None is not a reference image"),
        (3.5, "float"),
        ({"url": "x"}, "dict"),
        (["https://e.x/a.png"], "list"),
        (object(), "object"),
    ],
)
def test_wrong_types_are_refused_naming_what_is_allowed(item: object, needle: str) -> None:
    """Anything but the six kinds is refused, with the item, its index and the allowed kinds."""
    refused(["https://e.x/ok.png", item], "images[1]", needle, "http(s) URL", "PIL image")


def test_a_non_sequence_of_images_is_refused() -> None:
    """``images`` itself must be a list (or one item)."""
    refused(42, "images must be a list")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ftp://example.com/a.png", "scheme 'ftp'"),
        ("file:///tmp/a.png", "scheme 'file'"),
        ("s3://bucket/key.png", "scheme 's3'"),
        ("http://", "has no host"),
        ("https:example.com/a.png", "has no host"),
        ("http://exa mple.com/a.png", "spaces or control characters"),
        ("http://[::1/a.png", "is malformed"),
        ("", "empty string"),
    ],
)
def test_bad_urls_are_refused(url: str, needle: str) -> None:
    """Other schemes, hostless, unescaped and malformed URLs are refused with the reason."""
    refused([url], "images[0]", needle)


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("data:image/png,abcd", "malformed"),
        ("data:image/png;base64", "malformed"),
        ("DATA:image/png;base64,iVBORw0KGgo=", "malformed"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "declares 'image/svg+xml'"),
        ("data:image/jpg;base64,/9j/4AAQ", "write image/jpeg"),
        ("data:text/plain;base64,aGVsbG8=", "allowed: image/png, image/jpeg"),
        ("data:image/png;base64,", "no data"),
        ("data:image/png;base64,iVBORw0KGgo", "not a multiple of 4"),
        ("data:image/png;base64,iVBO Rw0KGgo=", "character ' ' at offset 4"),
        ("data:image/png;base64,iVBO-w0KGgo_", "character '-'"),
        ("data:image/png;base64,/9j/4AAQSkZJRg==", "declares image/png but its data is image/jpeg"),
        ("data:image/gif;base64,aGVsbG8gd29ybGQh", "is not a PNG, JPEG, WEBP or GIF"),
    ],
)
def test_malformed_data_uris_are_refused_by_the_check(uri: str, needle: str) -> None:
    """Header, type, base64 syntax and a type that lies about the bytes are caught up front."""
    refused([uri], "images[0]: data URI", needle)


def test_padding_inside_a_data_uri_is_refused() -> None:
    """'=' anywhere but the last two characters is invalid, even in 4-character groups."""
    uri = "data:image/png;base64," + base64.b64encode(png_by_hand()).decode() + "QQ==QUJD"
    refused([uri], "character '='")


def test_missing_file_is_refused_with_the_path_and_the_rule(tmp_path: Path) -> None:
    """A path that does not exist names the path and says how strings are read."""
    missing = tmp_path / "nope.png"
    refused([str(missing)], str(missing), "does not exist", "taken as a path")
    refused([missing / "deeper.png"], "does not exist")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory is not an image file."""
    refused([tmp_path], "is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_refused(tmp_path: Path) -> None:
    """A named pipe (which could block a reader forever) is not a regular file."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused([fifo], "is not a regular file")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    """A zero-byte file is refused by the check, without reading it."""
    empty = tmp_path / "empty.png"
    empty.touch()
    refused([empty], "is empty")


def test_an_unreadable_file_is_refused(png_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the process may not read is refused by the check (access denied)."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    refused([png_file], "is not readable")


def test_an_impossible_path_is_refused_not_crashed() -> None:
    """A NUL byte or an over-long name gives a validation error, not ValueError/OSError."""
    refused(["bad\x00name.png"], "cannot be accessed")
    error = refused(["x" * 100_000], "cannot be accessed")
    assert len(str(error)) < 500


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        (b"", "bytes object is empty"),
        (bytearray(), "bytearray object is empty"),
        (b"hello world, not an image", "not a PNG, JPEG, WEBP or GIF image"),
        (b"BM\x00\x00" * 4, "it starts with b'BM"),
        (memoryview(png_by_hand() * 2)[::2], "not contiguous"),
    ],
)
def test_bad_bytes_are_refused_by_the_check(item: object, needle: str) -> None:
    """Empty, unknown-type and strided buffers are refused before any encoding."""
    refused([item], "images[0]", needle)


def test_text_and_closed_and_write_only_files_are_refused(tmp_path: Path) -> None:
    """A text-mode file, a closed file and a file open only for writing are refused."""
    path = tmp_path / "f.png"
    path.write_bytes(png_by_hand())
    with open(path) as text:
        refused([text], "text mode", "'rb'", "f.png")
    refused([io.StringIO("x")], "text mode")
    closed = open(path, "rb")  # noqa: SIM115 -- closed on the next line on purpose
    closed.close()
    refused([closed], "is closed")
    with open(tmp_path / "out.png", "wb") as write_only:
        refused([write_only], "not open for reading")


def test_sizes_known_without_reading_are_capped_in_the_check(png_file: Path) -> None:
    """With max_bytes the check refuses big files, bytes and data URIs, naming size and cap."""
    data = png_file.read_bytes()
    cap = len(data) - 1
    refused([png_file], f"{len(data):,} bytes", f"cap of {cap:,} bytes", max_bytes=cap)
    refused([data], f"{len(data):,} bytes", max_bytes=cap)
    refused([data_uri("image/png", data)], f"{len(data):,} bytes", max_bytes=cap)
    check_image_inputs([png_file, data, data_uri("image/png", data)], max_bytes=len(data))


def test_long_data_uris_are_truncated_in_messages() -> None:
    """A megabyte-long bad data URI yields a short message that still names it."""
    uri = "data:image/png;base64," + "A" * 1_000_000 + "!!!"
    with pytest.raises(RequestValidationError) as info:
        anyio.run(encode_image_inputs, [uri])
    message = str(info.value)
    assert "data:image/png;base64,AAAA" in message
    assert "1,000,025 chars" in message
    assert len(message) < 400


# --- refusals: found while encoding ------------------------------------------------------


async def test_a_non_image_file_is_refused_when_read(tmp_path: Path) -> None:
    """A text file passes the check (no reads) but encoding refuses its content."""
    path = tmp_path / "notes.png"
    path.write_text("just some notes")
    check_image_inputs([path])
    await encode_refused([path], "notes.png", "not a PNG, JPEG, WEBP or GIF", "b'just some n")


async def test_a_file_gone_after_the_check_is_refused_with_its_cause(png_file: Path) -> None:
    """A file deleted between check and encode fails cleanly, chained from the OSError."""
    plan = _inputs._plan("images[0]", png_file, DEFAULT_MAX_IMAGE_BYTES)
    await anyio.Path(png_file).unlink()
    assert plan.work is not None
    with pytest.raises(RequestValidationError, match="cannot be read") as info:
        await anyio.to_thread.run_sync(plan.work)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert str(png_file.parent) not in str(info.value).split("cannot be read")[1]


async def test_oversized_local_data_is_refused_with_size_and_cap(png_file: Path) -> None:
    """Files, bytes, file objects, PIL images and data URIs over max_bytes are refused."""
    data = pillow_bytes("PNG")
    cap = len(data) - 1
    for item in (png_file, data, data_uri("image/png", data)):
        await encode_refused([item], f"{len(data):,} bytes", f"cap of {cap:,}", max_bytes=cap)
    await encode_refused([io.BytesIO(data)], f"more than {cap:,} bytes", max_bytes=cap)
    await encode_refused([Image.new("RGB", (64, 64))], "over the cap", max_bytes=10)


async def test_file_object_failures_are_refused_with_their_cause() -> None:
    """A read error, text from read(), a non-bytes result and an empty stream are refused."""

    class Failing:
        def read(self, size: int = -1, /) -> bytes:
            raise OSError(5, "Input/output error")

    class Texty:
        def read(self, size: int = -1, /) -> str:
            return "text"

    class Weird:
        def read(self, size: int = -1, /) -> int:
            return 7

    error = await encode_refused([Failing()], "cannot be read", "Input/output error")
    assert isinstance(error.__cause__, OSError)
    await encode_refused([Texty()], "returned text", "'rb'")
    await encode_refused([Weird()], "returned int")
    await encode_refused([io.BytesIO()], "is empty")


async def test_a_pil_save_failure_is_refused_with_its_cause() -> None:
    """When Pillow cannot save the image the error names it and chains Pillow's."""
    image = Image.new("RGB", (4, 4))
    image.close()
    error = await encode_refused([image], "PIL image (RGB 4x4)")
    assert error.__cause__ is not None


async def test_a_big_corrupt_data_uri_is_refused_when_encoding() -> None:
    """Past the inline limit, a bad character deep in the payload is found in the encode phase."""
    payload = base64.b64encode(pillow_bytes("PNG") + bytes(300_000)).decode()
    uri = "data:image/png;base64," + payload[:200_000] + "*" + payload[200_001:]
    check_image_inputs([uri])
    await encode_refused([uri], "character '*' at offset 200000")


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True, "20MB"])
async def test_a_bad_cap_is_refused(max_bytes: Any) -> None:
    """max_bytes must be a positive int."""
    await encode_refused(
        ["https://e.x/a.png"], "max_bytes must be a positive int", max_bytes=max_bytes
    )


# --- the sliced base64 -------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=4000), st.integers(1, 700), st.text(alphabet="data:imgpn/;,", max_size=8))
def test_sliced_encoder_equals_one_shot_b64encode(data: bytes, thirds: int, prefix: str) -> None:
    """For any bytes, slice size (3k) and prefix, both encoder paths equal b64encode."""
    expected = prefix + base64.b64encode(data).decode()
    assert expected == b64encode_sliced(data, prefix=prefix, slice_bytes=3 * thirds)
    view = memoryview(data)
    assert expected == _b64._encode_appending(view, prefix, 3 * thirds)
    assert expected == _b64._encode_joining(view, prefix, 3 * thirds)


@PROPERTY
@given(
    st.lists(st.one_of(st.binary(max_size=50), st.text(alphabet="ab+/=,:", max_size=50))),
    st.integers(1, 20),
)
def test_sliced_ascii_join_equals_a_plain_join(parts: list[bytes | str], slice_chars: int) -> None:
    """join_ascii_sliced concatenates bytes and ASCII text exactly, for any slice size."""
    expected = b"".join(p if isinstance(p, bytes) else p.encode("ascii") for p in parts)
    assert expected == _b64.join_ascii_sliced(parts, slice_chars=slice_chars)


@pytest.mark.parametrize("slice_bytes", [0, -3, 4, 1000])
def test_slice_sizes_must_be_positive_multiples_of_3(slice_bytes: int) -> None:
    """A slice size that would put padding mid-stream is refused."""
    with pytest.raises(ValueError, match="multiple of 3"):
        b64encode_sliced(b"abc", slice_bytes=slice_bytes)


# binascii's strict mode (3.11+), passed by name so mypy's 3.10 stubs accept the call.
STRICT: dict[str, Any] = {"strict_mode": True}


def _strict_decode(text: str) -> bytes | None:
    try:
        if len(text) % 4:
            return None
        return binascii.a2b_base64(text, **STRICT)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return None


@pytest.mark.skipif(sys.version_info < (3, 11), reason="strict_mode arrived in 3.11")
@PROPERTY
@given(st.text(alphabet="AQgw09+/=-_ \n\u00e9", min_size=1, max_size=40), st.integers(1, 9))
def test_sliced_validation_agrees_with_a_strict_decoder(text: str, slice_chars: int) -> None:
    """b64_error accepts exactly what a strict decoder does, for any slice size, and sizes it."""
    decoded = _strict_decode(text)
    assert (decoded is not None) == (b64_error(text, slice_chars=slice_chars) is None)
    if decoded is not None:
        assert len(decoded) == b64_decoded_size(text)


@PROPERTY
@given(st.binary(max_size=300), st.text(max_size=10), st.integers(1, 50))
def test_sliced_validation_honours_the_start_offset(
    data: bytes, head: str, slice_chars: int
) -> None:
    """Validation from an offset ignores the header before it, for any slice size."""
    text = head + base64.b64encode(data).decode()
    if data:
        assert b64_error(text, len(head), slice_chars=slice_chars) is None
        assert len(data) == b64_decoded_size(text, len(head))


@PROPERTY
@given(
    st.sampled_from([png_by_hand(), GIF_BY_HAND, JPEG_STUB, WEBP_STUB]), st.binary(max_size=2000)
)
def test_encoded_data_uris_round_trip(magic: bytes, tail: bytes) -> None:
    """Any image bytes encode to a data URI that decodes to the same bytes and sniffed MIME."""
    data = magic + tail
    uri = _local.encode_data("images[0]: bytes", data, DEFAULT_MAX_IMAGE_BYTES)
    assert (sniff_mime(magic), data) == parse(uri)
    check_image_inputs([uri])
    assert [uri] == anyio.run(encode_image_inputs, [uri])


_URLISH = st.sampled_from(
    ["", "data:", "data:image/png;base64,", "data:image/gif;base64,R0lG", "http://", "https://",
     "HTTP:", "ftp://", "/", "./", "~", "data:image/png;base64,iVBORw0KGgo"]
)  # fmt: skip


@PROPERTY
@given(_URLISH, st.text(max_size=60))
def test_random_strings_only_ever_raise_request_validation_error(head: str, tail: str) -> None:
    """The check on any string passes or raises RequestValidationError, never anything else."""
    try:
        check_image_inputs([head + tail], max_bytes=1000)
    except RequestValidationError as error:
        message = str(error)
    else:
        message = ""
    assert len(message) < 1000


# --- the event loop stays free -----------------------------------------------------------


@pytest.fixture
def recorded_threads(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Wraps a module function so that each call records its thread and can wait on the loop."""

    def install(module: Any, name: str, loop_ticked: threading.Event, seen: list[int]) -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            # Deadlocks (then fails) if this runs on the loop: the ticker could not run.
            assert loop_ticked.wait(timeout=10), "the event loop did not run during the call"
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    return install


async def _tick_until(event: threading.Event, done: anyio.Event, ticks: list[int]) -> None:
    while not done.is_set():
        await anyio.sleep(0.001)
        ticks.append(1)
        event.set()


async def test_big_inputs_are_encoded_in_a_worker_thread_while_the_loop_runs(
    recorded_threads: Callable[..., Any], tmp_path: Path
) -> None:
    """Encoding 16 MB (bytes, a file, a PIL image) runs off the loop thread, the loop ticking."""
    loop_thread = threading.get_ident()
    loop_ticked, seen, ticks = threading.Event(), list[int](), list[int]()
    recorded_threads(_local, "b64encode_sliced", loop_ticked, seen)
    big = pillow_bytes("PNG") + os.urandom(16 * 2**20)
    path = tmp_path / "big.png"
    path.write_bytes(big)
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_tick_until, loop_ticked, done, ticks)
        encoded = await encode_image_inputs([big, path, Image.new("RGB", (32, 32))])
        done.set()
    assert 3 == len(seen)
    assert loop_thread not in seen
    assert [big, big] == [parse(uri)[1] for uri in encoded[:2]]


async def test_big_data_uris_are_validated_in_a_worker_thread(
    recorded_threads: Callable[..., Any],
) -> None:
    """A 12 MB data URI is validated off the loop thread, the loop ticking meanwhile."""
    loop_thread = threading.get_ident()
    loop_ticked, seen, ticks = threading.Event(), list[int](), list[int]()
    recorded_threads(_inputs, "_validated_data_uri", loop_ticked, seen)
    uri = data_uri("image/png", pillow_bytes("PNG") + os.urandom(12 * 2**20))
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_tick_until, loop_ticked, done, ticks)
        assert [uri] == await encode_image_inputs([uri])
        done.set()
    assert 1 == len(seen)
    assert loop_thread not in seen


async def test_the_loop_keeps_ticking_during_a_real_sliced_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the real encoder, the ticker task runs while 16 MB are being encoded."""
    during: list[int] = []
    inside = threading.Event()
    real = _b64.b64encode_sliced

    def flagged(*args: Any, **kwargs: Any) -> str:
        inside.set()
        try:
            return real(*args, **kwargs)
        finally:
            inside.clear()

    monkeypatch.setattr("linkai_images._inputs.local.b64encode_sliced", flagged)

    async def ticker(done: anyio.Event) -> None:
        while not done.is_set():
            await anyio.sleep(0.001)
            if inside.is_set():
                during.append(1)

    big = pillow_bytes("PNG") + os.urandom(16 * 2**20)
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker, done)
        await encode_image_inputs([big])
        done.set()
    assert during, "the loop never ran while the encoder was working"
