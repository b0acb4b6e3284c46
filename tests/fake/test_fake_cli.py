"""`python -m linkai_images.testing serve` and the pytest plugin, each in a child process."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from linkai_images.testing import png_size
from linkai_images.testing.__main__ import main

BODY = {"model": "gpt-image-2", "prompt": "a paper boat", "size": "1K", "aspect_ratio": "1:1"}


@contextmanager
def serve(*options: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """Run the CLI server; yield it and the settings it printed. Kills it if still running."""
    command = [sys.executable, "-m", "linkai_images.testing", "serve", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(3)]
        urls = dict(line.split("=", 1) for line in lines if "=" in line)
        assert ["LINKAI_BASE_URL", "LINKAI_CDN_URL", "LINKAI_API_KEY"] == list(urls), lines
        yield process, urls
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_serve_starts_answers_and_stops_on_sigint() -> None:
    """serve prints both URLs and the key, applies --api-key and --b64, exits 0 on SIGINT."""
    with serve("--api-key", "sk-cli", "--b64", "--latency", "0.01:0.02") as (process, urls):
        assert "sk-cli" == urls["LINKAI_API_KEY"]
        headers = {"Authorization": "Bearer sk-cli"}
        with httpx.Client(base_url=urls["LINKAI_BASE_URL"], headers=headers) as client:
            response = client.post("/images/generations", json=BODY)
            as_url = client.post("/images/generations", json={**BODY, "response_format": "url"})
            image = client.get(as_url.json()["data"][0]["url"])
        assert 200 == response.status_code
        assert (64, 64) == png_size(base64.b64decode(response.json()["data"][0]["b64_json"]))
        assert as_url.json()["data"][0]["url"].startswith(urls["LINKAI_CDN_URL"])
        assert (64, 64) == png_size(image.content)
        process.send_signal(signal.SIGINT)
        assert 0 == process.wait(timeout=10)


def test_serve_fault_options_and_sigterm() -> None:
    """--503-rate 1 answers every request 503; SIGTERM stops the server cleanly."""
    with serve("--503-rate", "1", "--port", "0", "--cdn-port", "0") as (process, urls):
        with httpx.Client(base_url=urls["LINKAI_BASE_URL"]) as client:
            assert 503 == client.post("/images/generations", json=BODY).status_code
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=10)


def test_serve_rate_limit_and_capacity() -> None:
    """--rate-limit 1/hour: the third request at once is answered 429."""
    limits = ("--rate-limit", "1/hour", "--capacity", "4")
    with serve("--api-key", "sk-cli", *limits) as (process, urls):
        key = {"Authorization": "Bearer sk-cli"}
        with httpx.Client(base_url=urls["LINKAI_BASE_URL"], headers=key) as client:
            statuses = [client.post("/images/generations", json=BODY).status_code for _ in "abc"]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert [200, 200, 429] == statuses  # one request may come an interval early


@pytest.mark.parametrize(
    "options",
    [
        ["--503-rate", "2"],
        ["--latency", "soon"],
        ["--503-rate", "0.6", "--drop-rate", "0.6"],
        ["--rate-limit", "5/fortnight"],
        ["--capacity", "0"],
    ],
)
def test_bad_options_are_refused(options: list[str]) -> None:
    """Out-of-range rates and unparsable latencies stop the command before serving."""
    with pytest.raises(SystemExit) as caught:
        main(["serve", *options])
    assert caught.value.code not in (0, None)


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    """With -p linkai_images.testing.pytest_plugin, linkai_fake and linkai_server work in a test."""
    (tmp_path / "test_uses_fixtures.py").write_text(
        textwrap.dedent(
            """
            import httpx

            def test_fixtures(linkai_fake, linkai_server):
                assert linkai_server.fake is linkai_fake
                linkai_fake.credits = 0
                headers = {"Authorization": f"Bearer {linkai_fake.api_key}"}
                with httpx.Client(base_url=linkai_server.base_url, headers=headers) as client:
                    body = {"model": "gpt-image-2", "prompt": "x"}
                    response = client.post("/images/generations", json=body)
                assert 406 == response.status_code
                assert 1 == linkai_fake.attempts("x")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    # Autoload off: the result must not depend on how the plugin is registered elsewhere.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "linkai_images.testing.pytest_plugin",
        "-p",
        "no:cacheprovider",
        str(tmp_path),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "1 passed" in result.stdout
