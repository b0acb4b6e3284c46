"""Around the calls: a forgotten client stays quiet, a refused connection names its URL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from linkai_images import APIConnectionError, AsyncImageClient
from linkai_images.testing import FakeServer

pytestmark = pytest.mark.anyio

FORGETFUL = textwrap.dedent(
    """
    import asyncio, sys
    from linkai_images import AsyncImageClient

    async def main():
        client = AsyncImageClient(default_model="gpt-image-2")
        response = await client.generate("a fox")
        await response.data[0].read()
        if sys.argv[1] == "kept":
            global kept
            kept = client  # alive until the interpreter exits

    asyncio.run(main())
    print("done")
    """
)


@pytest.mark.parametrize("lifetime", ["collected", "kept"])
def test_a_client_never_closed_leaves_no_noise_at_exit(
    lifetime: str, linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A script that forgets aclose() (aiohttp transport, pooled connections) prints no more."""
    script = tmp_path / "forgetful.py"
    script.write_text(FORGETFUL, encoding="utf-8")
    env = {
        **os.environ,
        "LINKAI_API_KEY": linkai_server.fake.api_key,
        "LINKAI_BASE_URL": linkai_server.base_url,
    }
    done = subprocess.run(
        [sys.executable, str(script), lifetime],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (0, "done\n", "") == (done.returncode, done.stdout, done.stderr)


def _refused_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_names_the_url_it_tried() -> None:
    """The error names the URL used, and no TLS wording for plain http (aiohttp's ssl:default)."""
    base_url = f"http://127.0.0.1:{_refused_port()}/v1"
    async with AsyncImageClient("sk-test", base_url=base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.generate("a fox", model="gpt-image-2")
    assert f"{base_url}/images/generations" in str(caught.value)
    assert "ssl" not in str(caught.value)
    assert caught.value.request_sent is False
