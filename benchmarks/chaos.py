"""Chaos: 10,000 generations through a faulty fake; nothing lost, nothing paid twice.

The fake runs in its own process (this file, ``--serve``) and fails requests at random,
seeded:

- 20% answered 503 (retried by the client, under its retry budget);
- 0.5% dropped before the answer (read, then the connection closed; nothing billed);
- 0.5% dropped after the answer (generated and billed, then the connection closed:
  the client cannot know, so it must not send the request again);
- 0.5% answered 200 with a body cut off mid-JSON (a malformed answer).

The client is ``AsyncImageClient`` with its defaults (3 attempts, the default retry
budget, 64 requests in flight) running ``generate_many(..., return_exceptions=True)``;
``--no-backoff`` makes the retry waits zero (``set_testing``) for a quicker run.
At the end the fake reports, per prompt, how many generations it billed, and the
run checks:

- lost: requests with no outcome (neither a response nor an exception): 0;
- paid twice: prompts the fake billed more than once: 0;
- untyped: outcomes that are neither an ``ImageResponse`` nor a ``LinkAIError``: 0;
- success: at least 97% of requests end with an image.

    python benchmarks/chaos.py                  # real backoff, about 25 s
    python benchmarks/chaos.py --no-backoff     # retries without waiting, about 6 s
    python benchmarks/chaos.py --backend trio   # the client on trio (the httpcore pool)
    python benchmarks/chaos.py --no-budget      # retry_budget=None, for comparison
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from linkai_images import (
    APIConnectionError,
    AsyncImageClient,
    ImageResponse,
    LinkAIError,
    RetryBudget,
    set_testing,
)
from linkai_images.testing import FakeLinkAI, Fault

MODEL = "gpt-image-2"
FAULTS = (
    (0.20, Fault.status(503)),
    (0.005, Fault.drop()),
    (0.005, Fault.drop(generated=True)),
    (0.005, Fault.malformed_json()),
)
TARGET_SUCCESS = 0.97


def serve(requests: int, seed: int) -> int:
    """The fake's process: serve until SIGTERM, then print per-prompt billing as JSON."""
    fake = FakeLinkAI(seed=seed, record_limit=requests * 3)
    for rate, fault in FAULTS:
        fake.fail_randomly(rate, fault)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake.serve() as server:
        print(server.base_url, flush=True)
        stop.wait()
    billed: collections.Counter[str] = collections.Counter()
    for record in fake.requests:
        injected = record.fault
        if record.prompt is not None and (
            (injected is None and record.status == 200)
            or (injected is not None and injected.generated)
        ):
            billed[record.prompt] += 1
    kinds = collections.Counter(
        "ok" if r.fault is None else (r.fault.kind + ("-generated" if r.fault.generated else ""))
        for r in fake.requests
    )
    report = {
        "requests": fake.request_count,
        "images_generated": fake.images_generated,
        "billed": dict(billed),
        "faults": dict(kinds),
    }
    print(json.dumps(report), flush=True)
    return 0


@contextmanager
def fake_process(requests: int, seed: int) -> Iterator[tuple[str, dict[str, object]]]:
    """The fake in a child process; yields its base URL and, after the block, its report."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--requests", str(requests), "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    report: dict[str, object] = {}
    try:
        yield child.stdout.readline().strip(), report
    finally:
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
        report.update(json.loads(out.strip().splitlines()[-1]))


async def run(base_url: str, requests: int, budget: bool) -> tuple[list[object], float]:
    """Send the batch; return every outcome, aligned with the prompts, and the seconds taken."""
    async with AsyncImageClient(
        "sk-linkai-fake-key",
        base_url=base_url,
        default_model=MODEL,
        retry_budget=RetryBudget() if budget else None,
    ) as client:
        started = time.monotonic()
        results = await client.generate_many(
            [f"chaos {i}" for i in range(requests)], return_exceptions=True
        )
        return list(results), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-backoff", action="store_true", help="retry without waiting")
    parser.add_argument(
        "--no-budget", action="store_true", help="retry_budget=None, for comparison"
    )
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.requests, args.seed)

    with fake_process(args.requests, args.seed) as (base_url, report), set_testing(args.no_backoff):
        results, seconds = anyio.run(
            run, base_url, args.requests, not args.no_budget, backend=args.backend
        )

    prompts = [f"chaos {i}" for i in range(args.requests)]
    billed: dict[str, int] = report["billed"]  # type: ignore[assignment]
    outcomes = collections.Counter(
        "image" if isinstance(r, ImageResponse) else type(r).__name__ for r in results
    )
    lost = args.requests - len(results) + sum(r is None for r in results)
    untyped = [r for r in results if not isinstance(r, ImageResponse | LinkAIError)]
    paid_twice = sum(1 for count in billed.values() if count > 1)
    successes = outcomes["image"]
    # Successes the fake did not bill, or billed generations nobody asked for: both 0.
    unbilled_images = sum(
        1
        for p, r in zip(prompts, results, strict=True)
        if isinstance(r, ImageResponse) and not billed.get(p)
    )
    billed_not_delivered = sum(
        1
        for p, r in zip(prompts, results, strict=True)
        if billed.get(p) and isinstance(r, APIConnectionError) and r.request_sent
    )
    attempts = collections.Counter(
        getattr(r, "attempts", 0) for r in results if getattr(r, "attempts", None)
    )
    rate = successes / args.requests
    mode = (
        ("no backoff" if args.no_backoff else "real backoff")
        + (", no budget" if args.no_budget else ", default budget")
        + f", {args.backend}"
    )
    print(f"requests {args.requests:,} in {seconds:.1f} s ({mode})")
    print(f"fake: {report['requests']:,} attempts received, faults {report['faults']}")
    print(f"outcomes: {dict(outcomes)}")
    print(f"attempts per request: {dict(sorted(attempts.items()))}")
    print(
        f"billed by the fake: {report['images_generated']:,} generations "
        f"({sum(billed.values()):,} by prompt, for {len(billed):,} prompts)"
    )
    print(f"billed, answer lost (a request_sent error, not re-sent): {billed_not_delivered}")
    rows = [
        ("lost (no outcome)", lost, lost == 0),
        ("paid twice (prompts billed > 1)", paid_twice, paid_twice == 0),
        ("images not billed", unbilled_images, unbilled_images == 0),
        ("untyped outcomes", len(untyped), not untyped),
        ("success rate", f"{rate:.2%}", rate >= TARGET_SUCCESS),
    ]
    print()
    print("| check | measured | holds |")
    print("|---|---:|:---:|")
    for name, value, holds in rows:
        print(f"| {name} | {value} | {'yes' if holds else 'NO'} |")
    return 0 if all(holds for _, _, holds in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
