"""``import linkai_images`` loads what a first call needs, and no more."""

from __future__ import annotations

import json
import subprocess
import sys

import linkai_images


def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def test_importing_the_package_does_not_import_tenacity_or_batch_machinery() -> None:
    """tenacity (only a retry needs it), batches, outputs and the blocking client stay unloaded."""
    loaded = _modules_after("import linkai_images")
    # What the libraries the package is built on load themselves is not ours to avoid
    # (httpx's optional CLI pulls in pygments, which may import html).
    libraries = _modules_after("import httpx, anyio, attrs")
    unwanted = {
        "tenacity",
        "asyncio",
        "linkai_images._batch.engine",
        "linkai_images._batch.plan",
        "linkai_images._outputs.results",
        "linkai_images._sync",
        "linkai_images._inputs.images",
        "linkai_images._pacing",
        "html",
        "typing_extensions",
    }
    assert set() == (unwanted - libraries) & loaded


def test_a_call_without_pacing_options_leaves_pacing_unloaded() -> None:
    """A client with no rate limits makes a call without loading ``_pacing``; asking loads it."""
    # A canned answer, not the fake: the fake enforces rate limits with ``_pacing`` itself.
    code = (
        "import sys, anyio, httpx, linkai_images\n"
        "def answer(request):\n"
        "    return httpx.Response(200, json={'created': 1, 'data': [{'url': 'https://x/1.png'}]})\n"
        "async def main():\n"
        "    transport = httpx.MockTransport(answer)\n"
        "    async with linkai_images.AsyncImageClient('sk-test', transport=transport) as client:\n"
        "        await client.generate('a fox', model='gpt-image-2')\n"
        "    assert 'linkai_images._pacing' not in sys.modules\n"
        "    linkai_images.AsyncImageClient('sk-test', rate_limit='60/minute')\n"
        "anyio.run(main)"
    )
    assert "linkai_images._pacing" in _modules_after(code)


def test_a_retry_imports_tenacity_when_it_happens() -> None:
    """The first retry loads tenacity (and the retry works: covered in tests/client)."""
    code = (
        "import anyio, linkai_images\n"
        "from linkai_images._retry import RetryPolicy, call_with_retries\n"
        "from linkai_images import APIConnectionError\n"
        "calls = []\n"
        "async def attempt():\n"
        "    calls.append(1)\n"
        "    if len(calls) == 1:\n"
        "        raise APIConnectionError('down', request_sent=False)\n"
        "    return 'ok'\n"
        "async def main():\n"
        "    with linkai_images.set_testing():\n"
        "        policy = RetryPolicy(max_attempts=3)\n"
        "        assert ('ok', 2) == await call_with_retries(attempt, policy)\n"
        "anyio.run(main)"
    )
    assert "tenacity" in _modules_after(code)


def test_lazy_names_resolve_and_report_the_public_module() -> None:
    """Names loaded on first use are the real objects, listed by dir(), from linkai_images."""
    from linkai_images._sync import ImageClient

    assert ImageClient is linkai_images.ImageClient
    assert "linkai_images" == linkai_images.BatchPlan.__module__
    assert set(linkai_images.__all__) <= set(dir(linkai_images))
