"""The examples and the notebook/web-server docs run against the fake and do what they say.

The Starlette app runs under a real uvicorn server on loopback (its own
asyncio loop, in a thread), in front of the fake server; the scripts run as
subprocesses, as a user would run them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from linkai_images import set_testing
from linkai_images.testing import DEFAULT_API_KEY, FakeLinkAI, FakeServer, Fault

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"
#: The app's client bound in the load test, and the users calling at once.
MAX_CONCURRENCY = 8
USERS = 60
#: Connections beyond the bound that a pool may open while one is being handed back.
SLACK = 2
#: A stall detector, not a benchmark: a blocked loop shows up as lag far above this.
MAX_LOOP_LAG = 0.5


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (a directory of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


starlette_app = load_example("starlette_app")


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port, in a thread; yield its URL.

    Retries in the app wait no real backoff (``set_testing``).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        loop="asyncio",
        http="h11",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def run() -> None:
        # set_testing is per thread: switch real backoff off in the app's thread.
        with set_testing():
            server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:  # set once the lifespan has opened the client
            assert thread.is_alive(), "uvicorn stopped while starting (see its log above)"
            assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def script_env(**extra: str) -> dict[str, str]:
    """The environment of an example run as a user would: the fake's key set."""
    return {**os.environ, "LINKAI_API_KEY": DEFAULT_API_KEY, **extra}


def run_script(
    args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python script in a subprocess, failing the test if it hangs."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the Starlette app under uvicorn ---------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    """The test's HTTP callers run on asyncio; the app runs on uvicorn's own asyncio loop."""
    return "asyncio"


@pytest.mark.anyio
async def test_many_users_share_one_pool_and_the_bound_without_stalling(
    linkai_fake: FakeLinkAI, linkai_server: FakeServer
) -> None:
    """60 users at once: all served, one shared pool, never more than max_concurrency in flight."""
    linkai_fake.latency = 0.1
    app = starlette_app.create_app(
        max_concurrency=MAX_CONCURRENCY,
        api_key=linkai_fake.api_key,
        base_url=linkai_server.base_url,
    )
    statuses: list[int] = []
    urls: set[str] = set()
    with serve_app(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            # The first request pays one-off costs on the loop (lazy imports of the HTTP
            # backend: ~0.2 s, more on a busy machine); the detector watches what follows.
            assert 200 == (await http.post("/generate", json={"prompt": "warm up"})).status_code
            app.state.loop_lag.reset()

            async def user(number: int) -> None:
                answer = await http.post("/generate", json={"prompt": f"a fox, take {number}"})
                statuses.append(answer.status_code)
                urls.update(answer.json()["urls"])

            async with anyio.create_task_group() as users:
                for number in range(USERS):
                    users.start_soon(user, number)
            health = (await http.get("/health")).json()
    assert [200] * USERS == statuses
    assert USERS == len(urls) == linkai_fake.images_generated - 1
    assert MAX_CONCURRENCY == linkai_fake.max_in_flight  # reached, never exceeded
    assert linkai_server.connections_opened <= MAX_CONCURRENCY + SLACK  # not one per user
    assert health["ticks"] > 0  # the ticker ran inside the app's loop all along
    assert health["loop_lag_max"] < MAX_LOOP_LAG, health


@pytest.fixture(scope="module")
def error_app() -> Iterator[tuple[FakeLinkAI, str]]:
    """One app (client timeout 0.5 s) in front of one fake, for the error cases."""
    fake = FakeLinkAI()
    with fake.serve() as server:
        app = starlette_app.create_app(
            max_concurrency=4, api_key=fake.api_key, base_url=server.base_url, timeout=0.5
        )
        with serve_app(app) as url:
            yield fake, url


def _no_setup(fake: FakeLinkAI) -> None:
    pass


def _busy(fake: FakeLinkAI) -> None:
    fake.fail(Fault.status(503, retry_after=7), prompt="always busy", times=100)


def _broken(fake: FakeLinkAI) -> None:
    fake.fail(Fault.status(500), prompt="broken", times=100)


def _dropped(fake: FakeLinkAI) -> None:
    fake.fail(Fault.drop(), prompt="dropped", times=100)


def _hangs(fake: FakeLinkAI) -> None:
    fake.fail(Fault.hang(seconds=5), prompt="too slow", times=100)


def _no_credits(fake: FakeLinkAI) -> None:
    fake.credits = 0


ERROR_CASES = [
    pytest.param(_no_setup, b"{not json", 400, "invalid_json", "JSON", id="not-json"),
    pytest.param(_no_setup, b"[1, 2]", 422, "invalid_request", "object", id="not-an-object"),
    pytest.param(_no_setup, b'{"prompt": "a fox", "n": 2}', 422, "invalid_request", "'n'",
                 id="unknown-field"),
    pytest.param(_no_setup, b'{"model": "gpt-image-2"}', 422, "invalid_request", "prompt",
                 id="no-prompt"),
    pytest.param(_no_setup, b'{"prompt": "a fox", "size": "3K"}', 422, "invalid_request",
                 "size '3K' is not offered by gpt-image-2", id="sdk-validation"),
    pytest.param(_no_setup, b'{"prompt": "a fox", "images": ["/etc/passwd"]}', 422,
                 "invalid_request", "http(s) URL", id="local-path-refused"),
    pytest.param(_no_setup, b'{"prompt": "a fox", "model": "no-such-model"}', 422,
                 "invalid_request", "no-such-model", id="unknown-model-402"),
    pytest.param(_no_setup, b'{"prompt": "a forbidden fox"}', 422, "content_policy_violation",
                 "moderation", id="moderation-409"),
    pytest.param(_busy, b'{"prompt": "always busy"}', 503, "service_unavailable", "",
                 id="busy-503-after-retries"),
    pytest.param(_broken, b'{"prompt": "broken"}', 502, "upstream_error", "500",
                 id="upstream-500"),
    pytest.param(_dropped, b'{"prompt": "dropped"}', 502, "upstream_error", "",
                 id="connection-dropped"),
    pytest.param(_hangs, b'{"prompt": "too slow"}', 504, "upstream_timeout", "",
                 id="read-timeout"),
    pytest.param(_no_credits, b'{"prompt": "a fox"}', 503, "service_unavailable",
                 "unavailable right now", id="out-of-credits-406"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "body", "status", "kind", "fragment"), ERROR_CASES)
def test_sdk_errors_map_to_http_statuses(
    error_app: tuple[FakeLinkAI, str],
    setup: Callable[[FakeLinkAI], None],
    body: bytes,
    status: int,
    kind: str,
    fragment: str,
) -> None:
    """Each failure answers with a fitting status and the platform's error shape, never the key."""
    fake, url = error_app
    setup(fake)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            answer = http.post("/generate", content=body)
    finally:
        fake.credits = None
    error = answer.json()["error"]
    assert (status, kind) == (answer.status_code, error["type"])
    assert fragment in error["message"]
    assert fake.api_key not in answer.text


def test_oversized_body_is_refused_and_a_big_one_parsed(
    error_app: tuple[FakeLinkAI, str],
) -> None:
    """A body over the cap gets 413; a big one under it (parsed off the loop) still works."""
    _, url = error_app
    cap = starlette_app.MAX_BODY_BYTES
    filler = b" " * (cap - 100)  # JSON whitespace: big, but cheap to send
    with httpx.Client(base_url=url, timeout=30) as http:
        too_big = http.post("/generate", content=b" " * (cap + 1))
        big = http.post("/generate", content=filler + b'{"prompt": "a fox"}')
    assert (413, "too_large") == (too_big.status_code, too_big.json()["error"]["type"])
    assert 200 == big.status_code


def test_busy_upstream_passes_retry_after_on(error_app: tuple[FakeLinkAI, str]) -> None:
    """A 503 that outlasted the retries keeps the platform's Retry-After for the caller."""
    fake, url = error_app
    _busy(fake)
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/generate", json={"prompt": "always busy"})
    assert (503, "7") == (answer.status_code, answer.headers.get("retry-after"))


# --- the scripts -------------------------------------------------------------------------------


def test_asyncio_quickstart_saves_the_image(linkai_server: FakeServer, tmp_path: Path) -> None:
    """examples/asyncio_quickstart.py generates one image and saves it where it is told."""
    done = run_script(
        [str(EXAMPLES / "asyncio_quickstart.py"), "fox.png"],
        tmp_path,
        script_env(LINKAI_BASE_URL=linkai_server.base_url),
    )
    assert 0 == done.returncode, done.stderr
    assert (tmp_path / "fox.png").read_bytes().startswith(PNG)
    assert f"saved fox.png{os.linesep}" in done.stdout


def test_trio_batch_saves_each_image_as_it_completes(
    linkai_fake: FakeLinkAI, linkai_server: FakeServer, tmp_path: Path
) -> None:
    """examples/trio_batch.py runs 12 lazy prompts on trio, 3 at a time, saving every image."""
    linkai_fake.latency = lambda rng: rng.uniform(0.01, 0.05)
    done = run_script(
        [str(EXAMPLES / "trio_batch.py"), "--base-url", linkai_server.base_url,
         "--count", "12", "--concurrency", "3", "--out", "images"],
        tmp_path,
        script_env(),
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr
    files = sorted((tmp_path / "images").iterdir())
    assert [f"{n:04d}.png" for n in range(12)] == [f.name for f in files]
    assert all(f.read_bytes().startswith(PNG) for f in files)
    assert 3 == linkai_fake.max_in_flight
    assert "12 saved in images, 0 failed" in done.stdout


def test_trio_batch_reports_a_failure_and_keeps_the_rest(
    linkai_fake: FakeLinkAI, linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A failed request is reported on stderr, the others are saved, and the exit status is 1."""
    linkai_fake.fail(Fault.status(400, message="unreachable reference image"), times=1)
    done = run_script(
        [str(EXAMPLES / "trio_batch.py"), "--count", "5", "--out", "images"],
        tmp_path,
        script_env(LINKAI_BASE_URL=linkai_server.base_url),
    )
    assert 1 == done.returncode
    assert 4 == len(list((tmp_path / "images").iterdir()))
    assert "unreachable reference image" in done.stderr
    assert "4 saved in images, 1 failed" in done.stdout


# --- the docs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", ["notebooks.md", "web-servers.md", "../examples/README.md"])
def test_doc_links_point_at_files(doc: str) -> None:
    """Every relative link of the doc names a file in the repository."""
    page = (ROOT / "docs" / doc).resolve()
    links = re.findall(r"\]\(([^)#:]+)\)", page.read_text(encoding="utf-8"))
    assert [] == [link for link in links if not (page.parent / link).exists()]
