"""The hot path on asyncio: CPU per request at C=500, today's client against earlier ones.

Run: ``python benchmarks/bench_hotpath.py [--baseline REV ...] [--reps 5] [--requests 1500]``

The C=500 row of ``run.py cpu``, with the client of each ``--baseline``
revision beside today's (default: ``a764843``, the last commit before issue
12's hot-path work). The fake answers at once, in its own process; every
measurement runs in a fresh, pinned interpreter (``run.py``'s ``fake_server``
and ``run_worker``), a baseline's package first on its path; contenders
run interleaved, and the tables show medians and the median of each
repetition's ratio. Contenders: raw ``aiohttp``; ``transport`` (today's
default transport driven directly, the floor ``run.py`` shows under
``linkai``); ``linkai`` (``generate`` under a semaphore) and
``linkai-many`` (``generate_many``), today's and each baseline's.
Target: ``linkai`` and ``linkai-many`` <= 1.3 x ``aiohttp``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _baseline_tree, _raise_file_limit, fake_server, machine, run_worker  # noqa: E402

CONCURRENCY = 500
TARGET = 1.3
DEFAULT_BASELINE = "a764843"


def main() -> int:
    """Run the contenders interleaved and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", action="append", help="a git revision (repeatable)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--requests", type=int, default=1500, help="measured per run")
    args = parser.parse_args()
    baselines = args.baseline or [DEFAULT_BASELINE]
    _raise_file_limit()
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, fake_server(0.0) as base_url:
        roots: dict[str, str | None] = {"today": None}
        for rev in baselines:
            into = Path(tmp) / rev
            into.mkdir()
            roots[rev] = str(_baseline_tree(rev, into))
        contenders = [("aiohttp", "aiohttp", None), ("transport", "transport", None)]
        contenders += [
            (f"{name} ({label})", name, root)
            for label, root in roots.items()
            for name in ("linkai", "linkai-many")
        ]
        for rep in range(args.reps):
            for label, contender, root in contenders:
                spec = {
                    "mode": "cpu",
                    "contender": contender,
                    "base_url": base_url,
                    "concurrency": CONCURRENCY,
                    "requests": args.requests,
                    "warmup": CONCURRENCY,
                    "package_root": root,
                }
                result = run_worker(spec)
                if result["failures"]:
                    raise RuntimeError(f"{label}: {result['errors']}")
                cpu[label].append(result["cpu_us"])
            print(
                f"  [rep {rep + 1}/{args.reps}] "
                + ", ".join(f"{label} {values[-1]:.0f}" for label, values in cpu.items()),
                file=sys.stderr,
                flush=True,
            )
    aiohttp = cpu["aiohttp"]
    print(f"Machine: {machine()}.\n")
    print(
        f"CPU per request at C={CONCURRENCY}, zero latency ({args.requests:,} requests per run, "
        f"{args.reps} interleaved runs; us, medians):\n"
    )
    print("| contender | us / request | / aiohttp (median of the runs' ratios) |")
    print("|---|---:|---:|")
    for label, values in cpu.items():
        ratio = statistics.median(v / a for v, a in zip(values, aiohttp, strict=True))
        print(f"| {label} | {statistics.median(values):,.0f} | {ratio:.2f} |")
    print("\n| target | measured | holds |\n|---|---:|:---:|")
    for name in ("linkai", "linkai-many"):
        values = cpu[f"{name} (today)"]
        ratio = statistics.median(v / a for v, a in zip(values, aiohttp, strict=True))
        holds = "yes" if ratio <= TARGET else "NO"
        print(f"| C={CONCURRENCY}: {name} / aiohttp <= {TARGET} | {ratio:.2f} | {holds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
