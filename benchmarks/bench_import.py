"""Import cost: ``import linkai_images`` against ``import httpx``, median of interleaved runs.

Run: ``python benchmarks/bench_import.py [--runs 10]``

Each run is a fresh interpreter with ``-X importtime``; the figure is the
sum of the cumulative times of the modules the statement names
(microseconds, as Python reports them). The statements run interleaved (A B C, A B C, ...),
so a busy machine slows all alike. Target: ``linkai_images`` <= 1.3 x
``httpx``. Also shown: ``httpx, anyio, attrs``, the libraries the first
call cannot do without (the floor), and whether tenacity (needed only to
retry) was imported.

Bytecode is compiled first and kept: an installed package has its ``.pyc``
files (pip writes them), and compiling the sources on every run, as an
environment with ``PYTHONDONTWRITEBYTECODE=1`` does, would time the
compiler rather than the import.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.3
STATEMENTS = {
    "linkai_images": "import linkai_images",
    "httpx": "import httpx",
    "floor": "import httpx, anyio, attrs",
}
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def import_time(statement: str, root: Path = ROOT) -> tuple[int, str]:
    """The cumulative import time of ``statement``'s top-level modules in a fresh interpreter."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    # Only the statement's own modules: the interpreter's start-up (``site`` and
    # what it loads) is reported at the top level too.
    wanted = {name.strip() for name in statement.removeprefix("import ").split(",")}
    total = 0
    for line in done.stderr.splitlines():
        found = _LINE.match(line)
        if found is not None and found.group(2) in wanted:
            total += int(found.group(1))
    if total == 0:
        raise RuntimeError(f"unexpected -X importtime output: {done.stderr[-300:]!r}")
    return total, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DIR",
        help="also time `import linkai_images` from DIR, a directory holding another copy "
        "of the package (e.g. `git archive REV linkai_images | tar -x -C DIR`)",
    )
    args = parser.parse_args()
    roots = [ROOT, *(Path(also).resolve() for also in args.also)]
    for root in roots:
        compileall.compile_dir(root / "linkai_images", quiet=1)
    rows = {name: (statement, ROOT) for name, statement in STATEMENTS.items()}
    rows |= {f"linkai_images in {root}": (STATEMENTS["linkai_images"], root) for root in roots[1:]}
    times: dict[str, list[int]] = {name: [] for name in rows}
    report = ""
    for _ in range(args.runs):
        for name, (statement, root) in rows.items():
            took, text = import_time(statement, root)
            times[name].append(took)
            if name == "linkai_images":
                report = text
    medians = {name: statistics.median(values) / 1000 for name, values in times.items()}
    httpx_ms = medians["httpx"]
    for name, (statement, root) in rows.items():
        label = statement if root == ROOT else f"{statement} ({root})"
        print(
            f"{label:28} median {medians[name]:6.1f} ms of {args.runs}"
            f"  ({medians[name] / httpx_ms:.2f} x httpx)"
        )
    ratio = medians["linkai_images"] / httpx_ms
    print(f"ratio {ratio:.2f} (target <= {TARGET}): {'holds' if ratio <= TARGET else 'MISSES'}")
    tenacity = re.search(r"\| *tenacity$", report, re.MULTILINE) is not None
    print(f"tenacity imported: {'yes' if tenacity else 'no'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
