"""A server that echoes the API key: the SDK never repeats it in clear.

Not in exception messages, not in the retry log lines, not in a checkpoint, not on the
command line's output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RawOrigin

from linkai_images import (
    APIConnectionError,
    APIResponseValidationError,
    AsyncImageClient,
    ServiceUnavailableError,
)
from linkai_images._cli.main import main
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


def echo(key: str) -> Fault:
    """A 503 whose message quotes the key, as a careless gateway might."""
    return Fault.status(503, message=f"upstream rejected Bearer {key} for this model")


@pytest.fixture
def origin() -> Iterator[RawOrigin]:
    """A loopback server answering whatever bytes the test sets."""
    running = RawOrigin()
    yield running
    running.close()


async def test_error_messages_and_bodies_mask_an_echoed_key(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """str(exc), exc.message and exc.body show the key masked, the rest of the text intact."""
    fake.fail(echo(fake.api_key), times=3)
    with pytest.raises(ServiceUnavailableError) as info:
        await client.generate("a fox")
    error = info.value
    assert "503: upstream rejected Bearer sk-l**** for this model" == str(error)
    assert fake.api_key not in error.message
    assert fake.api_key not in repr(error.body)
    assert fake.api_key not in repr(error)


async def test_retry_log_lines_mask_an_echoed_key(
    client: AsyncImageClient, fake: FakeLinkAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry's log line quotes the failure with the key masked."""
    fake.fail(echo(fake.api_key), times=2)
    with caplog.at_level(logging.WARNING, logger="linkai_images"):
        await client.generate("a fox")
    lines = [record.getMessage() for record in caplog.records]
    assert 2 == len(lines)
    assert all("Bearer sk-l****" in line for line in lines)
    assert not any(fake.api_key in line for line in lines)


async def test_a_checkpoint_records_the_failure_with_the_key_masked(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """The journal line of a failed request keeps the message, not the key."""
    fake.fail(echo(fake.api_key), prompt="p1", times=3)
    journal = tmp_path / "run.jsonl"
    await client.generate_many(["p0", "p1"], checkpoint=journal, return_exceptions=True)
    text = journal.read_text()
    assert "Bearer sk-l****" in text
    assert fake.api_key not in text


async def test_a_200_that_is_no_image_answer_masks_the_key(
    client: AsyncImageClient, fake: FakeLinkAI, origin: RawOrigin
) -> None:
    """A malformed success body that quotes the key gives an error with it masked."""
    key = "sk-echo-0123456789abcdef"
    body = f'{{"note": "hello {key}"}}'.encode()
    origin.reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with AsyncImageClient(key, base_url=origin.base_url, default_model="gpt-image-2") as c:
        with pytest.raises(APIResponseValidationError) as info:
            await c.generate("a fox")
    assert "hello sk-e****" in str(info.value)
    assert key not in str(info.value) + repr(info.value.body)


async def test_a_transport_error_quoting_the_answer_masks_the_key(origin: RawOrigin) -> None:
    """A broken status line that carries the key: the connection error masks it."""
    key = "sk-echo-0123456789abcdef"
    origin.reply = f"HTTP/1.1 2OO {key}\r\n\r\n".encode()
    async with AsyncImageClient(
        key, base_url=origin.base_url, default_model="gpt-image-2", max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.generate("a fox")
    assert key not in str(info.value)


def test_the_command_line_masks_an_echoed_key(
    linkai_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate and batch print the echoed key nowhere: not the retries, errors or journal."""
    fake = linkai_server.fake
    fake.fail(echo(fake.api_key), times=6)
    api = ["--base-url", linkai_server.base_url, "--api-key", fake.api_key]
    assert 1 == main(["generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path), *api])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('"p1"\n')
    out_dir = tmp_path / "out"
    assert 1 == main(
        ["batch", str(prompts), "--out", str(out_dir), "-m", "gpt-image-2", "--no-progress", *api]
    )
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "upstream rejected Bearer" in printed
    assert fake.api_key not in printed
    journals = "".join(path.read_text() for path in out_dir.glob("*.jsonl"))
    assert "upstream rejected Bearer" in journals
    assert fake.api_key not in journals
