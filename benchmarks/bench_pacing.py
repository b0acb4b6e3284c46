"""Pacing benchmarks (issue 14) on the loopback fake.

Run: ``python benchmarks/bench_pacing.py [case ...] [--reps 3]``

Cases (all by default):

- ``paced``: one client limited to R = 1,200/minute (scaled: one start every
  50 ms) sends 5 s worth (5 x R/60 = 100 requests) at concurrency 64 to a
  fake enforcing R: wall time against the ideal ((N - 1) intervals plus one
  answer), 429s, and the worst window against R*W/60 + 1; asyncio and trio.
- ``adaptive``: a fake with capacity 8 (50 ms per answer: 160 answers/s at
  most), a client with max_concurrency 64 sending 800 requests, adaptive
  concurrency on and off (default retries): 429s per attempt, throughput
  against what the capacity allows, failures.
- ``shared``: four processes sharing one limiter on a real redis-server
  (``redis-server`` on a free port), R in total, 25 requests each: 429s,
  the worst window, wall time against the ideal.
- ``hotpath``: client CPU per request at C=500 with no pacing, this checkout
  against the last commit before pacing (``--before``, default ``86a0e18``,
  extracted with ``git archive``), interleaved in fresh interpreters; and
  this checkout with a rate limit too high to wait (the pacing path on).

Contenders run interleaved; tables show medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "pacing"))

from pacing_windows import most_in_window  # noqa: E402

from linkai_images import AsyncImageClient, RateLimitError, RetryEvent  # noqa: E402
from linkai_images.testing import DEFAULT_API_KEY as API_KEY  # noqa: E402
from linkai_images.testing import FakeLinkAI  # noqa: E402

RATE, PER_SECOND = "1200/minute", 20.0
WIDTHS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


def worst_window(times: Sequence[float]) -> str:
    """The window closest to its bound, as ``starts/bound @ W s``."""
    ratios = [(most_in_window(times, w) / (PER_SECOND * w + 1), w) for w in WIDTHS]
    _, width = max(ratios)
    return f"{most_in_window(times, width)}/{PER_SECOND * width + 1:g} @ {width:g} s"


async def _paced(backend_latency: float) -> dict[str, Any]:
    fake = FakeLinkAI(rate_limit=RATE, latency=backend_latency)
    count = int(5 * PER_SECOND)
    with fake.serve() as server:
        async with AsyncImageClient(
            fake.api_key,
            base_url=server.base_url,
            default_model="gpt-image-2",
            max_concurrency=64,
            rate_limit=RATE,
        ) as client:
            await client.generate("warm up")
            fake.reset()
            started = time.perf_counter()
            await client.generate_many([f"p{i}" for i in range(count)])
            wall = time.perf_counter() - started
    ideal = (count - 1) / PER_SECOND + backend_latency
    statuses = [r.status for r in fake.requests]
    return {
        "wall": wall,
        "ratio": wall / ideal,
        "429": statuses.count(429),
        "window": worst_window(fake.starts()),
    }


def case_paced(reps: int) -> list[str]:
    rows: dict[str, list[dict[str, Any]]] = {"asyncio": [], "trio": []}
    for rep in range(reps):
        for backend in rows:
            result = anyio.run(_paced, 0.02, backend=backend)
            rows[backend].append(result)
            print(f"  [paced rep {rep + 1}] {backend}: {result}", file=sys.stderr, flush=True)
    lines = [
        f"One client at {RATE}, 100 requests at concurrency 64, fake enforcing the same rate "
        f"(median of {reps}; ideal = 99 intervals + one 20 ms answer = 4.97 s):",
        "",
        "| backend | wall s | wall / ideal | 429s | worst window (starts/bound) |",
        "|---|---:|---:|---:|---|",
    ]
    for backend, results in rows.items():
        median = statistics.median(r["ratio"] for r in results)
        wall = statistics.median(r["wall"] for r in results)
        lines.append(
            f"| {backend} | {wall:.2f} | {median:.3f} | {max(r['429'] for r in results)} | "
            f"{results[-1]['window']} |"
        )
    return lines


async def _adaptive(adaptive: bool | None, base_url: str) -> dict[str, Any]:
    """800 requests at max_concurrency 64 (adaptive on or off), or 8 (``None``: the capacity)."""
    latency, capacity, count = 0.05, 8, 800
    refused = 0

    def on_retry(event: RetryEvent) -> None:
        nonlocal refused
        refused += isinstance(event.cause, RateLimitError)

    async with AsyncImageClient(
        API_KEY,
        base_url=base_url,
        default_model="gpt-image-2",
        max_concurrency=8 if adaptive is None else 64,
        adaptive_concurrency=bool(adaptive),
        on_retry=on_retry,
    ) as client:
        started = time.perf_counter()
        results = await client.generate_many(
            [f"p{i}" for i in range(count)], return_exceptions=True
        )
        wall = time.perf_counter() - started
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    attempts = sum(r.attempts for r in succeeded) + sum(getattr(r, "attempts", 1) for r in failed)
    refused += sum(isinstance(r, RateLimitError) for r in failed)
    return {
        "share_429": refused / attempts,
        "throughput": len(succeeded) / wall / (capacity / latency),
        "failed": len(failed),
        "attempts": attempts,
        "wall": wall,
    }


def case_adaptive(reps: int) -> list[str]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for rep in range(reps):
        for backend in ("asyncio", "trio"):
            for adaptive in (True, False, None):
                kind = {True: "adaptive on", False: "adaptive off", None: "fixed at 8 (reference)"}
                name = f"{backend}, {kind[adaptive]}"
                # A fresh fake (its own process) per run: the capacity starts empty.
                options = ("--capacity", "8", "--latency", "0.05")
                with fake_process(ROOT, *options) as base_url:
                    result = anyio.run(_adaptive, adaptive, base_url, backend=backend)
                rows.setdefault(name, []).append(result)
                print(f"  [adaptive rep {rep + 1}] {name}: {result}", file=sys.stderr, flush=True)
    lines = [
        f"Fake capacity 8 at 50 ms per answer (160 answers/s at most), max_concurrency 64, "
        f"800 requests, default retries (median of {reps}):",
        "",
        "| client | 429s / attempts | throughput / capacity | failed requests | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, results in rows.items():

        def med(key: str, results: list[dict[str, Any]] = results) -> float:
            return float(statistics.median(r[key] for r in results))

        lines.append(
            f"| {name} | {med('share_429'):.1%} | {med('throughput'):.1%} | "
            f"{med('failed'):.0f} | {med('wall'):.2f} |"
        )
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def _shared(redis_url: str, backend: str) -> dict[str, Any]:
    fake = FakeLinkAI(rate_limit=RATE, latency=0.02)
    each, processes = 25, 4
    prefix = f"bench-{uuid.uuid4().hex}"
    worker = ROOT / "tests" / "pacing" / "pacing_worker.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with fake.serve() as server:
        args = [backend, server.base_url, fake.api_key, redis_url, prefix, RATE, str(each)]
        workers = [
            subprocess.Popen(
                [sys.executable, str(worker), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(processes)
        ]
        for process in workers:
            assert process.stdout is not None
            process.stdout.readline()
        fake.reset()
        started = time.perf_counter()
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in workers:
            process.communicate(timeout=120)
        wall = time.perf_counter() - started
    count = each * processes
    ideal = (count - 1) / PER_SECOND + 0.02
    return {
        "429": [r.status for r in fake.requests].count(429),
        "window": worst_window(fake.starts()),
        "ratio": wall / ideal,
        "wall": wall,
    }


def case_shared(reps: int) -> list[str]:
    rows: dict[str, list[dict[str, Any]]] = {"asyncio": [], "trio": []}
    with redis_server() as url:
        for rep in range(reps):
            for backend in rows:
                result = _shared(url, backend)
                rows[backend].append(result)
                print(f"  [shared rep {rep + 1}] {backend}: {result}", file=sys.stderr, flush=True)
    lines = [
        f"Four processes sharing {RATE} through one redis-server, 25 requests each at "
        f"concurrency 64, fake enforcing the rate (median of {reps}; ideal 4.97 s):",
        "",
        "| backend | wall s | wall / ideal | 429s (max) | worst window (last run) |",
        "|---|---:|---:|---:|---|",
    ]
    for backend, results in rows.items():
        lines.append(
            f"| {backend} | {statistics.median(r['wall'] for r in results):.2f} | "
            f"{statistics.median(r['ratio'] for r in results):.3f} | "
            f"{max(r['429'] for r in results)} | {results[-1]['window']} |"
        )
    return lines


@contextmanager
def fake_process(root: Path, *options: str) -> Iterator[str]:
    """The fake of ``root`` in its own process (default: no latency); yields its base URL."""
    options = options or ("--latency", "0")
    command = [sys.executable, "-m", "linkai_images.testing", "serve", *options]
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip().partition("=")[2]
    finally:
        process.terminate()
        process.wait(10)


PACED_HOT = """
import asyncio, collections, gc, json, resource, sys, time
from linkai_images import AsyncImageClient
async def main(base_url):
    client = AsyncImageClient("sk-linkai-fake-key", base_url=base_url, max_retries=0,
                              max_concurrency=500, rate_limit="1000000/second")
    sem = asyncio.Semaphore(500)
    async def one(i):
        async with sem:
            await client.generate(f"a fox {i}", model="gpt-image-2", aspect_ratio="16:9")
    async def run(a, n):
        await asyncio.gather(*(one(i) for i in range(a, a + n)))
    await run(0, 1000)
    gc.collect()
    u = resource.getrusage(resource.RUSAGE_SELF); cpu = u.ru_utime + u.ru_stime
    await run(1000, 5000)
    u = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_us": (u.ru_utime + u.ru_stime - cpu) / 5000 * 1e6}))
    await client.aclose()
asyncio.run(main(sys.argv[1]))
"""


def case_hotpath(reps: int, before: str) -> list[str]:
    old = Path(tempfile.mkdtemp(prefix="linkai-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", before], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        spec = {"mode": "cpu", "contender": "linkai", "concurrency": 500}
        spec |= {"requests": 5000, "warmup": 1000}
        results: dict[str, list[float]] = {}
        with fake_process(ROOT) as base_url:
            for rep in range(reps):
                for name, root in (
                    (f"before ({before})", old),
                    ("now", ROOT),
                    ("now, paced", None),
                ):
                    if root is None:
                        command = [sys.executable, "-c", PACED_HOT, base_url]
                        env_root = ROOT
                    else:
                        command = [
                            sys.executable,
                            str(root / "benchmarks" / "contenders.py"),
                            json.dumps({**spec, "base_url": base_url}),
                        ]
                        env_root = root
                    done = subprocess.run(
                        command,
                        capture_output=True,
                        text=True,
                        check=True,
                        env={**os.environ, "PYTHONPATH": str(env_root)},
                    )
                    cpu = json.loads(done.stdout.strip().splitlines()[-1])["cpu_us"]
                    results.setdefault(name, []).append(cpu)
                    print(f"  [hotpath rep {rep + 1}] {name}: {cpu:.0f} us", file=sys.stderr)
    finally:
        shutil.rmtree(old, ignore_errors=True)
    base = statistics.median(next(iter(results.values())))
    lines = [
        f"Client CPU per request at C=500, zero latency, asyncio (median of {reps}; us):",
        "",
        "| client | us / request | against before |",
        "|---|---:|---:|",
    ]
    for name, values in results.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {median / base:.2f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="paced, adaptive, shared, hotpath")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", default="86a0e18", help="the commit before pacing")
    args = parser.parse_args(argv)
    cases = args.cases or ["paced", "adaptive", "shared", "hotpath"]
    out: list[str] = []
    for case in cases:
        if case == "hotpath":
            out += case_hotpath(args.reps, args.before)
        else:
            out += {"paced": case_paced, "adaptive": case_adaptive, "shared": case_shared}[case](
                args.reps
            )
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
