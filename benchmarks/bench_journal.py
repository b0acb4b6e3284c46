"""Throughput of a batch with the crash-safe journal, against the same batch without one.

Run: ``python benchmarks/bench_journal.py [--requests 2000] [--reps 3] [--backend asyncio|trio]``

The fake runs in its own process (``python -m linkai_images.testing serve``),
once with no latency (the worst case for the journal: nothing hides its
fsyncs) and once with 50 ms. For each latency and concurrency it runs,
interleaved, repetitions of the same ``as_completed`` batch:

- ``none``: no checkpoint;
- ``journal``: the checkpoint as shipped: an intent record on disk before
  each request is sent, the outcome on disk before the item is handed out,
  records of the same moment sharing one write and one fsync (group commit);
- ``per-record``: the same records, each written and fsync'd on its own
  (one lock, no grouping): what group commit saves.

The table shows the median throughput, its ratio to ``none``, and the
fsyncs per request of ``journal``. Target: ``journal`` keeps >= 0.8 of the
throughput of ``none`` at 50 ms latency (a real generation takes seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from linkai_images import AsyncImageClient
from linkai_images._batch import checkpoint as checkpoint_module
from linkai_images._batch.checkpoint import Checkpoint
from linkai_images._batch.engine import as_completed

CONTENDERS = ("none", "journal", "per-record")
TARGET = 0.8


class PerRecord(Checkpoint):
    """The journal without group commit: one write and one fsync per record, in turn."""

    _lock: anyio.Lock | None = None

    async def write(self, record: Mapping[str, Any]) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        async with self._lock:
            await anyio.to_thread.run_sync(self._write_sync, line.encode() + b"\n")


class Syncs:
    """Counts the journal's fsyncs."""

    def __init__(self) -> None:
        self.count = 0
        self._real = checkpoint_module._sync

    def __call__(self, fd: int) -> None:
        self.count += 1
        self._real(fd)


async def run_batch(
    base_url: str, api_key: str, contender: str, requests: int, concurrency: int, folder: Path
) -> tuple[float, int]:
    """One batch; returns (seconds, fsyncs)."""
    syncs = Syncs()
    checkpoint_module._sync = syncs
    path = folder / f"{contender}-{time.monotonic_ns()}.jsonl"
    journal: Checkpoint | None = None
    if contender == "journal":
        journal = await Checkpoint.open(path)
    elif contender == "per-record":
        journal = await PerRecord.open(path)
    prompts = [f"bench {contender} {n}" for n in range(requests)]
    try:
        async with AsyncImageClient(
            api_key, base_url=base_url, default_model="gpt-image-2", max_concurrency=concurrency
        ) as client:
            started = time.perf_counter()
            batch = as_completed(client, prompts, concurrency=concurrency, checkpoint=journal)
            async with batch as items:
                done = sum([1 async for item in items if item.ok])
            elapsed = time.perf_counter() - started
        assert done == requests, (contender, done)
    finally:
        if journal is not None:
            await journal.aclose()
        checkpoint_module._sync = syncs._real
    return elapsed, syncs.count


def serve(latency: float) -> tuple[subprocess.Popen[str], str]:
    """Start the fake in its own process; return it and its base URL."""
    command = [sys.executable, "-m", "linkai_images.testing", "serve", "--latency", str(latency)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip().partition("=")[2]
    process.stdout.readline()
    return process, base_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    print(f"{args.requests} requests per batch, median of {args.reps}, backend {args.backend}")
    print("| latency | concurrency | none (req/s) | journal (req/s) | per-record (req/s) "
          "| journal / none | per-record / none | fsyncs per request (journal) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    held = True
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        for latency in args.latency:
            process, base_url = serve(latency)
            try:
                for concurrency in args.concurrency:
                    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
                    syncs: list[float] = []
                    for _ in range(args.reps):
                        for name in CONTENDERS:  # interleaved: noise hits all alike
                            elapsed, count = anyio.run(
                                run_batch,
                                base_url,
                                "sk-linkai-fake-key",
                                name,
                                args.requests,
                                concurrency,
                                Path(tmp),
                                backend=args.backend,
                            )
                            rates[name].append(args.requests / elapsed)
                            if name == "journal":
                                syncs.append(count / args.requests)
                    med = {name: statistics.median(values) for name, values in rates.items()}
                    ratio = med["journal"] / med["none"]
                    if latency > 0 and ratio < TARGET:
                        held = False
                    print(
                        f"| {latency * 1000:.0f} ms | {concurrency} | {med['none']:,.0f} "
                        f"| {med['journal']:,.0f} | {med['per-record']:,.0f} | {ratio:.2f} "
                        f"| {med['per-record'] / med['none']:.2f} "
                        f"| {statistics.median(syncs):.2f} |",
                        flush=True,
                    )
            finally:
                process.terminate()
                process.wait(timeout=10)
    print(f"target journal / none >= {TARGET} with latency: {'holds' if held else 'MISSED'}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
