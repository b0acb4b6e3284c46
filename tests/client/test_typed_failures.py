"""The measured cases of untyped or misleading failures, each now a clear LinkAIError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RawOrigin

from linkai_images import (
    APIResponseValidationError,
    APIStatusError,
    AsyncImageClient,
    BadRequestError,
    RequestValidationError,
    ServiceUnavailableError,
)
from linkai_images._cli.main import main

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


@pytest.fixture
def origin() -> Iterator[RawOrigin]:
    """A loopback server answering whatever bytes the test sets."""
    running = RawOrigin()
    yield running
    running.close()


def answer(status: int, body: bytes, *headers: str) -> bytes:
    """A well-framed HTTP/1.1 answer."""
    head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def client_on(origin: RawOrigin) -> AsyncImageClient:
    """A client on the raw origin that makes one attempt per call."""
    return AsyncImageClient(
        "sk-typed-0123456789", base_url=origin.base_url, default_model="gpt-image-2", max_retries=0
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, APIResponseValidationError), (400, BadRequestError), (503, ServiceUnavailableError)],
)
async def test_deeply_nested_json_answers_are_typed(
    origin: RawOrigin, status: int, expected: type[Exception]
) -> None:
    """``[`` x 2,000 answered 200, 400 or 503 is that answer's error, not a RecursionError."""
    origin.reply = answer(status, b"[" * 2000)
    async with client_on(origin) as client:
        with pytest.raises(expected) as info:
            await client.generate("a fox")
    assert "[[[[" in str(info.value)


async def test_an_image_whose_url_is_not_a_string_is_a_malformed_answer(
    origin: RawOrigin,
) -> None:
    """``{"data":[{"url": 5}]}`` is refused as a malformed answer, naming the item."""
    origin.reply = answer(200, b'{"data":[{"url": 5}]}')
    async with client_on(origin) as client:
        with pytest.raises(APIResponseValidationError) as info:
            await client.generate("a fox")
    assert "an item of 'data' has no 'url' or 'b64_json' string: {'url': 5}" == str(info.value)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (
            302,
            ("Location: /elsewhere",),
            "HTTP 302 Found (a redirect to '/elsewhere', not followed)",
        ),
        (301, (), "HTTP 301 Moved Permanently, not an answer of this API"),
    ],
)
async def test_a_3xx_with_an_image_body_is_not_a_success(
    origin: RawOrigin, status: int, headers: tuple[str, ...], expected: str
) -> None:
    """A redirect carrying a valid image body is an APIStatusError, not an image."""
    origin.reply = answer(status, b'{"data":[{"url":"http://cdn.test/a.png"}]}', *headers)
    async with client_on(origin) as client:
        with pytest.raises(APIStatusError) as info:
            await client.generate("a fox")
    assert status == info.value.status_code
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"size": "1" * 5000 + "x1"},
            "size '11111111111111111111111111111111'… (5002 characters) is no tier",
        ),
        ({"size": "1" * 5000}, "size '11111111111111111111111111111111'… (5000 characters) is not"),
        ({"prompt": "a fox\ud800"}, "prompt has '\\ud800' at position 5, a lone surrogate"),
        ({"quality": "\udcff"}, "quality has '\\udcff' at position 0, a lone surrogate"),
        ({"extra_body": {"deep": "x\ud800"}}, "extra_body cannot be sent as JSON"),
        ({"extra_body": {"x": object()}}, "extra_body cannot be sent as JSON"),
    ],
)
async def test_bad_arguments_are_validation_errors_that_name_the_field(
    client: AsyncImageClient, fields: dict[str, Any], message: str
) -> None:
    """A huge size, a lone surrogate, unserialisable extra_body: RequestValidationError."""
    arguments: dict[str, Any] = {"prompt": "a fox", **fields}
    with pytest.raises(RequestValidationError) as info:
        await client.generate(**arguments)
    assert message in str(info.value)


async def test_a_deeply_nested_extra_body_is_a_validation_error(client: AsyncImageClient) -> None:
    """An extra_body nested 2,000 deep is refused before sending, not a RecursionError."""
    nested: dict[str, Any] = {}
    for _ in range(2000):
        nested = {"a": nested}
    with pytest.raises(RequestValidationError, match="extra_body is nested too deeply"):
        await client.generate("a fox", extra_body={"deep": nested})


async def test_a_batch_refuses_a_deep_extra_body_before_sending_any(
    client: AsyncImageClient,
) -> None:
    """The batch check finds the bad extra_body of request 1 before request 0 is sent."""
    nested: dict[str, Any] = {}
    for _ in range(2000):
        nested = {"a": nested}
    batch = ["a fox", {"prompt": "a cat", "extra_body": {"deep": nested}}]
    with pytest.raises(RequestValidationError, match="nested too deeply"):
        await client.generate_many(batch)


@pytest.mark.parametrize("status", [200, 400, 503])
def test_the_command_line_reports_a_deep_json_answer_in_one_line(
    origin: RawOrigin, status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """linkai-images generate on a ``[`` x 2,000 answer: exit 1, one error line, no traceback."""
    origin.reply = answer(status, b"[" * 2000)
    argv = ["generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path), "--max-retries", "0",
            "--base-url", origin.base_url, "--api-key", "sk-typed-0123456789"]  # fmt: skip
    assert 1 == main(argv)
    err = capsys.readouterr().err
    assert 1 == len(err.strip().splitlines()), err
    assert err.startswith("linkai-images: error: ")
    assert "Traceback" not in err


async def test_a_body_that_fails_to_decode_is_a_malformed_answer(origin: RawOrigin) -> None:
    """A gzip Content-Encoding over plain bytes: APIResponseValidationError, on both loops."""
    origin.reply = answer(200, b"hello", "Content-Encoding: gzip")
    async with client_on(origin) as client:
        with pytest.raises(APIResponseValidationError, match="cannot be decoded"):
            await client.generate("a fox")
