"""Event-loop lag and throughput of base64-encoding a big reference image.

Run: ``python benchmarks/bench_encode.py [--mb 20] [--reps 15] [--backend asyncio|trio|both]``

For one random input (20 MiB by default) it runs, interleaved, repetitions of:

- ``plain``: ``base64.b64encode(data).decode()`` in a worker thread, the
  obvious way, which holds the GIL for the whole encoding;
- ``sliced``: ``b64encode_sliced(data)`` in a worker thread (``_b64.py``);
- ``encode_image_inputs``: the SDK's whole path for raw bytes (size check,
  sniffing, sliced encoding into a data URI), as a user gets it.

While each runs, a ticker task sleeps 1 ms at a time on the event loop and
records how late it wakes up: that overshoot is the loop's lag, the time
every other task (HTTP traffic of other requests, progress bars) waits. The
table shows, per case, the median over repetitions of the max and p99 lag
and of the throughput, and the ratio of the sliced encoder to plain.
Targets: max lag <= 10 ms, throughput >= 0.8x plain.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from linkai_images._inputs.b64 import DEFAULT_SLICE_BYTES, b64encode_sliced
from linkai_images._inputs.images import encode_image_inputs

TICK = 0.001
LAG_TARGET_MS = 10.0
THROUGHPUT_TARGET = 0.8
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Sample:
    """One timed run: elapsed seconds and the lags the ticker saw."""

    def __init__(self, elapsed: float, lags: list[float]) -> None:
        self.elapsed = elapsed
        self.lags = sorted(lags) or [0.0]

    @property
    def max_ms(self) -> float:
        return self.lags[-1] * 1e3

    @property
    def p99_ms(self) -> float:
        return self.lags[min(len(self.lags) - 1, int(len(self.lags) * 0.99))] * 1e3


async def measure(job: Callable[[], Awaitable[object]]) -> Sample:
    """Run ``job`` while a ticker measures the loop's lag; return both."""
    lags: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await anyio.sleep(TICK)
            lags.append(max(0.0, time.perf_counter() - start - TICK))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)  # the ticker is running before the job starts
        lags.clear()
        start = time.perf_counter()
        await job()
        elapsed = time.perf_counter() - start
        done.set()
    return Sample(elapsed, lags)


async def run(size_mb: int, reps: int) -> dict[str, list[Sample]]:
    data = PNG_MAGIC + os.urandom(size_mb * 2**20 - len(PNG_MAGIC))

    async def idle() -> None:
        await anyio.sleep(0.05)

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "idle loop (reference)": idle,
        "plain b64encode": lambda: anyio.to_thread.run_sync(
            lambda: base64.b64encode(data).decode("ascii")
        ),
        "sliced": lambda: anyio.to_thread.run_sync(b64encode_sliced, data),
        "encode_image_inputs": lambda: encode_image_inputs([data], max_bytes=len(data)),
    }
    results: dict[str, list[Sample]] = {name: [] for name in cases}
    for rep in range(reps + 1):
        for name, job in cases.items():
            sample = await measure(job)
            if rep:  # the first round warms up allocators and thread pools
                results[name].append(sample)
    return results


def report(backend: str, size_mb: int, results: dict[str, list[Sample]]) -> bool:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    rows = {}
    for name, samples in results.items():
        rows[name] = (
            median([s.max_ms for s in samples]),
            median([s.p99_ms for s in samples]),
            max(s.max_ms for s in samples),
            median([size_mb / s.elapsed for s in samples]),
        )
    plain_mbps = rows["plain b64encode"][3]
    reps = len(next(iter(results.values())))
    print(
        f"\n{backend}: {size_mb} MiB random input, {reps} interleaved repetitions, "
        f"slice {DEFAULT_SLICE_BYTES:,} bytes, Python {sys.version.split()[0]}"
    )
    header = (
        f"{'case':<24}{'max lag ms':>12}{'p99 lag ms':>12}{'worst max':>11}"
        f"{'MiB/s':>9}{'vs plain':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, (max_ms, p99_ms, worst, mbps) in rows.items():
        ratio = "" if name.startswith("idle") else f"{mbps / plain_mbps:.2f}x"
        speed = "" if name.startswith("idle") else f"{mbps:.0f}"
        print(f"{name:<24}{max_ms:>12.1f}{p99_ms:>12.1f}{worst:>11.1f}{speed:>9}{ratio:>10}")
    sliced_max, _, _, sliced_mbps = rows["sliced"]
    ok = sliced_max <= LAG_TARGET_MS and sliced_mbps >= THROUGHPUT_TARGET * plain_mbps
    print(
        f"sliced/plain: lag {sliced_max:.1f} / {rows['plain b64encode'][0]:.1f} ms, "
        f"throughput {sliced_mbps / plain_mbps:.2f}x -> "
        f"{'meets' if ok else 'MISSES'} the targets (max lag <= {LAG_TARGET_MS:g} ms, "
        f">= {THROUGHPUT_TARGET}x)"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20, help="input size in MiB (default 20)")
    parser.add_argument("--reps", type=int, default=15, help="repetitions (default 15)")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    ok = True
    for backend in backends:
        results = anyio.run(run, args.mb, args.reps, backend=backend)
        ok = report(backend, args.mb, results) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
