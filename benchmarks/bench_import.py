"""Import cost: ``import linkai_images`` against ``import httpx``, median of interleaved runs.

Run: ``python benchmarks/bench_import.py [--runs 10]``

Each run is a fresh interpreter with ``-X importtime``; the figure is the
cumulative time of the top-level module (microseconds, as Python reports it).
The two imports run interleaved (A B, A B, ...), so a busy machine slows both
alike. Target: ``linkai_images`` <= 1.3 x ``httpx``. Also shown: whether
tenacity (needed only to retry) was imported.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.3


def import_time(module: str) -> tuple[int, str]:
    """The cumulative import time of ``module`` in a fresh interpreter, and the report."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    last = done.stderr.strip().splitlines()[-1]
    found = re.match(r"import time:\s+\d+ \|\s+(\d+) \| " + re.escape(module) + "$", last)
    if found is None:
        raise RuntimeError(f"unexpected -X importtime output: {last!r}")
    return int(found.group(1)), done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ours: list[int] = []
    theirs: list[int] = []
    report = ""
    for _ in range(args.runs):
        took, report = import_time("linkai_images")
        ours.append(took)
        theirs.append(import_time("httpx")[0])
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"import linkai_images: median {statistics.median(ours) / 1000:.1f} ms of {args.runs}")
    print(f"import httpx:         median {statistics.median(theirs) / 1000:.1f} ms")
    print(f"ratio {ratio:.2f} (target <= {TARGET}): {'holds' if ratio <= TARGET else 'MISSES'}")
    tenacity = re.search(r"\| *tenacity$", report, re.MULTILINE) is not None
    print(f"tenacity imported: {'yes' if tenacity else 'no'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
