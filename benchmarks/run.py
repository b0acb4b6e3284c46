"""Client benchmarks on the loopback fake: our client against raw httpx, raw aiohttp and openai.

Run: ``python benchmarks/run.py [case ...] [--reps 3] [--readme]``

Cases (all by default):

- ``cpu``: client CPU time per request (``resource.getrusage``) at
  concurrency 1, 100 and 500 with the fake answering at once;
- ``fanout``: 640 requests, 64 at a time, 200 ms each: wall time against the
  ideal 2.0 s;
- ``wide``: 1,000 requests at once, 2 s each: failures (pool timeouts) and
  wall time against the ideal 2.0 s;
- ``rss``: peak RSS growth of ``as_completed`` over 100,000 lazily generated
  requests;
- ``otel``: the cost of telemetry, client CPU per request at C=500: the
  client before telemetry (``--baseline``, default the commit before
  ``_telemetry.py`` came) against today's with ``opentelemetry`` not
  importable, installed with no provider set, and recording with the SDK,
  both clients in one process in alternating blocks; a control row runs the
  baseline against a copy of itself.

The fake (``python -m linkai_images.testing serve``) runs in its own process
and every measurement in a fresh one, pinned apart with ``taskset`` where
there are two CPUs (server on the second, client on the first). Contenders
run interleaved (A B C D, A B C D, ...) and the table shows medians. Each
sends the same request (``gpt-image-2``, a prompt, ``aspect_ratio``) with no
retries, and bounds its requests in flight with one semaphore (our client's
``generate_many``/``as_completed`` bound themselves):

- ``linkai``: ``AsyncImageClient.generate`` (the default transport: aiohttp
  on asyncio when installed);
- ``linkai-many``: ``AsyncImageClient.generate_many``;
- ``linkai-trio``: ``AsyncImageClient.generate`` on trio (the SDK's pool);
- ``transport`` (``cpu`` only): our default transport driven directly, as the
  client drives it, with no client logic: the floor under ``linkai``;
- ``httpx``: raw ``httpx.AsyncClient`` with its limits raised to the concurrency;
- ``aiohttp``: raw ``aiohttp.ClientSession``;
- ``openai``: ``AsyncOpenAI(...).images.generate`` (its default pool);
- ``streams`` (``fanout`` only): a bare HTTP/1.1 keep-alive loop on asyncio
  streams, with no checks, errors or timeouts: not a usable client, but the
  floor of what this machine and the fake allow;
- the trio floors (issue 12): ``transport-trio`` (``cpu`` only), our transport
  alone on trio, as ``transport`` on asyncio; ``httpcore-trio``, raw httpcore
  HTTP/1.1 connections (h11) on trio, on a stack of idle connections;
  ``h11-trio``, h11's state machine alone on trio's socket streams (``cpu``
  only); ``trio-streams``, the ``streams`` loop on trio's socket streams.

``--only a,b,c`` runs only those contenders (targets naming others are left
out). ``--readme`` writes the table into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CPU_CONCURRENCY = (1, 100, 500)
#: Requests measured and warm-up requests (which open the pool) per concurrency.
CPU_REQUESTS = {1: (200, 20), 100: (1200, 100), 500: (1500, 500)}
CONTENDERS = ("linkai", "linkai-many", "linkai-trio", "httpx", "aiohttp", "openai")
#: The CPU case also measures our transport alone, to split the client's cost.
#: The trio floors: our transport alone on trio, raw httpcore (h11) connections on trio, and a
#: bare keep-alive loop on trio's streams (``streams``' twin): what trio itself costs here.
TRIO_FLOORS = ("transport-trio", "httpcore-trio", "h11-trio", "trio-streams")
CPU_CONTENDERS = (
    "linkai",
    "linkai-many",
    "linkai-trio",
    "transport",
    "httpx",
    "aiohttp",
    "openai",
    *TRIO_FLOORS,
)
FANOUT = {"latency": 0.2, "concurrency": 64, "requests": 640}
#: The fan-out also runs the floor: what the machine allows a client that does nothing else.
FANOUT_CONTENDERS = (*CONTENDERS, "streams", "httpcore-trio", "trio-streams")
WIDE = {"latency": 2.0, "concurrency": 1000, "requests": 1000}
RSS_REQUESTS = 100_000
RSS_CONCURRENCY = 64
README = HERE / "README.md"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


#: ``--only``: the contenders to run (all when empty); targets naming others are left out.
ONLY: frozenset[str] = frozenset()


def _chosen(contenders: Sequence[str]) -> tuple[str, ...]:
    return tuple(c for c in contenders if not ONLY or c in ONLY)


def _cpus() -> tuple[list[str], list[str]]:
    """taskset prefixes for the client and the server, empty where pinning is not possible."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") and len(allowed) >= 2:
        return ["taskset", "-c", str(allowed[0])], ["taskset", "-c", str(allowed[1])]
    return [], []


CLIENT_PIN, SERVER_PIN = _cpus()


def _raise_file_limit() -> None:
    """1,000-way fan-out needs more than the usual 1,024 descriptors (children inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextmanager
def fake_server(latency: float) -> Iterator[str]:
    """The fake API in its own (pinned) process; yields its base URL."""
    command = [sys.executable, "-m", "linkai_images.testing", "serve", "--latency", str(latency)]
    process = subprocess.Popen(
        SERVER_PIN + command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("LINKAI_BASE_URL="):
            raise RuntimeError(f"the fake did not start: {line!r}")
        yield line.partition("=")[2]
    finally:
        process.terminate()
        process.wait(10)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh, pinned interpreter."""
    command = [sys.executable, str(HERE / "contenders.py"), json.dumps(spec)]
    done = subprocess.run(
        CLIENT_PIN + command, capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['contender']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _interleaved(
    specs: Sequence[dict[str, Any]], reps: int, label: str
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for rep in range(reps):
        for spec in specs:
            result = run_worker(spec)
            results[spec["contender"]].append(result)
            shown = f"{result['cpu_us']:.0f} us/req" if "cpu_us" in result else ""
            print(
                f"  [{label} rep {rep + 1}/{reps}] {spec['contender']:12s} {shown} "
                f"wall {result['wall_s']:.2f} s, failures {result['failures']}",
                file=sys.stderr,
                flush=True,
            )
    return results


def _median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def case_cpu(reps: int) -> list[str]:
    """Client CPU per request at zero latency, C = 1, 100, 500."""
    table: dict[int, dict[str, float]] = {}
    failures: dict[int, dict[str, int]] = {}
    with fake_server(0.0) as base_url:
        for concurrency in CPU_CONCURRENCY:
            requests, warmup = CPU_REQUESTS[concurrency]
            specs = [
                {
                    "mode": "cpu",
                    "contender": c,
                    "base_url": base_url,
                    "concurrency": concurrency,
                    "requests": requests,
                    "warmup": warmup,
                }
                for c in _chosen(CPU_CONTENDERS)
            ]
            results = _interleaved(specs, reps, f"cpu C={concurrency}")
            table[concurrency] = {c: _median(results[c], "cpu_us") for c in results}
            failures[concurrency] = {c: sum(r["failures"] for r in results[c]) for c in results}
    lines = [
        f"Client CPU time per request, zero latency (median of {reps}; us):",
        "",
        "| contender | " + " | ".join(f"C={c}" for c in CPU_CONCURRENCY) + " |",
        "|---|" + "---:|" * len(CPU_CONCURRENCY),
    ]
    for contender in _chosen(CPU_CONTENDERS):
        cells = []
        for concurrency in CPU_CONCURRENCY:
            cell = f"{table[concurrency][contender]:,.0f}"
            if failures[concurrency][contender]:
                cell += f" ({failures[concurrency][contender]} failed)"
            cells.append(cell)
        lines.append(f"| {contender} | " + " | ".join(cells) + " |")

    def ratio(c: int, a: str, b: str) -> float | None:
        if a not in table[c] or b not in table[c]:
            return None
        return table[c][a] / table[c][b]

    targets = [
        ("C=500: linkai / aiohttp <= 1.3 (issue 12)", ratio(500, "linkai", "aiohttp"), 1.3),
        ("C=500: linkai / httpx <= 0.2", ratio(500, "linkai", "httpx"), 0.2),
        ("C=100: linkai / openai <= 0.35", ratio(100, "linkai", "openai"), 0.35),
        (
            "C=500: linkai-many / aiohttp <= 1.3 (issue 12)",
            ratio(500, "linkai-many", "aiohttp"),
            1.3,
        ),
        (
            "C=500: linkai-trio / aiohttp <= 1.6 (issue 12)",
            ratio(500, "linkai-trio", "aiohttp"),
            1.6,
        ),
    ]
    lines += ["", "| target | measured | holds |", "|---|---:|:---:|"]
    lines += [_target(name, value, limit) for name, value, limit in targets if value is not None]
    for name in ("transport", *TRIO_FLOORS):
        value = ratio(500, name, "aiohttp")
        if value is not None:
            lines.append(f"| (for reference) C=500: {name} / aiohttp | {value:.2f} | |")
    return lines


def _target(name: str, value: float, limit: float, *, at_least: bool = False) -> str:
    holds = value >= limit if at_least else value <= limit
    return f"| {name} | {value:.2f} | {'yes' if holds else 'NO'} |"


def _wall_case(
    reps: int, params: dict[str, Any], contenders: Sequence[str], label: str
) -> dict[str, list[dict[str, Any]]]:
    with fake_server(params["latency"]) as base_url:
        specs = [
            {
                "mode": "wall",
                "contender": c,
                "base_url": base_url,
                "concurrency": params["concurrency"],
                "requests": params["requests"],
                "warmup": 0,
            }
            for c in contenders
        ]
        return _interleaved(specs, reps, label)


def case_fanout(reps: int) -> list[str]:
    """640 requests of 200 ms, 64 at a time: the ideal is 2.0 s."""
    p = FANOUT
    ideal = p["latency"] * p["requests"] / p["concurrency"]
    contenders = _chosen(FANOUT_CONTENDERS)
    results = _wall_case(reps, p, contenders, "fanout")
    lines = [
        f"Fan-out: {p['requests']} requests x {p['latency'] * 1000:.0f} ms, "
        f"{p['concurrency']} at a time; ideal {ideal:.1f} s (median of {reps}):",
        "",
        "| contender | wall (s) | ideal / wall | aiohttp's wall / wall | failures |",
        "|---|---:|---:|---:|---:|",
    ]
    best = _median(results[contenders[0] if "aiohttp" not in results else "aiohttp"], "wall_s")
    for c in contenders:
        wall = _median(results[c], "wall_s")
        failed = sum(r["failures"] for r in results[c])
        lines.append(f"| {c} | {wall:.2f} | {ideal / wall:.3f} | {best / wall:.3f} | {failed} |")
    lines += ["", "| target | measured | holds |", "|---|---:|:---:|"]
    for name, limit in (("linkai", 0.97), ("linkai-many", 0.97), ("linkai-trio", 0.95)):
        if name in results:
            share = ideal / _median(results[name], "wall_s")
            target = f"fan-out: {name} >= {limit} of ideal"
            lines.append(_target(target, share, limit, at_least=True))
    for name in ("streams", "httpcore-trio", "trio-streams"):
        if name in results:
            share = ideal / _median(results[name], "wall_s")
            lines.append(f"| (for reference) `{name}`, of ideal | {share:.2f} | |")
    return lines


def case_wide(reps: int) -> list[str]:
    """1,000 requests at once, 2 s each: nothing may fail for want of a connection."""
    p = WIDE
    reps = 1  # a failure count, not a timing: one run keeps the whole suite short
    results = _wall_case(reps, p, CONTENDERS, "wide")
    lines = [
        f"Wide fan-out: {p['requests']} requests at once, {p['latency']:.0f} s each; "
        f"ideal {p['latency']:.1f} s ({reps} run(s); failures summed):",
        "",
        "| contender | wall (s) | failures | errors |",
        "|---|---:|---:|---|",
    ]
    for c in CONTENDERS:
        errors: collections.Counter[str] = collections.Counter()
        for r in results[c]:
            errors.update(r["errors"])
        shown = ", ".join(f"{k} x{v}" for k, v in errors.items()) or "-"
        lines.append(
            f"| {c} | {_median(results[c], 'wall_s'):.2f} | {sum(errors.values())} | {shown} |"
        )
    failed = sum(r["failures"] for c in ("linkai", "linkai-many") for r in results[c])
    lines += [
        "",
        "| target | measured | holds |",
        "|---|---:|:---:|",
        f"| 1,000-way: no failures (linkai, linkai-many) | {failed} | "
        f"{'yes' if failed == 0 else 'NO'} |",
    ]
    return lines


def case_rss(reps: int) -> list[str]:
    """Peak RSS growth of as_completed over 100,000 lazily generated requests."""
    with fake_server(0.0) as base_url:
        result = run_worker(
            {
                "mode": "rss",
                "contender": "linkai",
                "base_url": base_url,
                "concurrency": RSS_CONCURRENCY,
                "requests": RSS_REQUESTS,
            }
        )
    growth = result["rss_growth_mb"]
    return [
        f"`as_completed` over {RSS_REQUESTS:,} lazily generated requests, concurrency "
        f"{RSS_CONCURRENCY}: peak RSS growth {growth:.1f} MB in {result['wall_s']:.0f} s, "
        f"{result['failures']} failed.",
        "",
        "| target | measured | holds |",
        "|---|---:|:---:|",
        f"| 100,000 lazy requests: RSS growth <= 50 MB | {growth:.1f} MB | "
        f"{'yes' if growth <= 50 else 'NO'} |",
    ]


#: The states of today's client in the ``otel`` case, each against the client before telemetry.
OTEL_VARIANTS = ("control", "absent", "off", "on")
#: Per process: requests per block, blocks (alternating before/after), warm-up requests.
OTEL_BLOCKS = {"requests": 1000, "blocks": 10, "warmup": 500}
#: The telemetry switched off may cost at most this much CPU per request.
OTEL_LIMIT = 1.02


def _baseline_tree(revision: str | None, into: Path) -> Path:
    """The ``linkai_images`` package of ``revision`` extracted under ``into``."""
    if revision is None:
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "linkai_images/_telemetry.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not added:
            raise RuntimeError("no commit adds linkai_images/_telemetry.py: pass --baseline")
        revision = added[-1] + "^"
    archive = subprocess.run(
        ["git", "archive", revision, "linkai_images"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


#: The ``otel`` case's baseline revision (``--baseline``); ``None``: before ``_telemetry.py``.
BASELINE: str | None = None


def case_otel(reps: int) -> list[str]:
    """Telemetry's CPU cost per request at C=500, off and on, against the client before it.

    Each process holds both clients and runs them in alternating blocks
    (``contenders._ab``); a block pair's ratio is after / before, and the
    table gives the median over every pair of every process.
    """
    import tempfile

    pairs: dict[str, list[float]] = {v: [] for v in OTEL_VARIANTS}
    before: dict[str, list[float]] = {v: [] for v in OTEL_VARIANTS}
    after: dict[str, list[float]] = {v: [] for v in OTEL_VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, fake_server(0.0) as base_url:
        root = str(_baseline_tree(BASELINE, Path(tmp)))
        for rep in range(reps):
            for variant in OTEL_VARIANTS:
                spec = {
                    "mode": "ab",
                    "contender": f"otel-{variant}",
                    "otel": variant,
                    "root": root,
                    "base_url": base_url,
                    "concurrency": 500,
                    **OTEL_BLOCKS,
                }
                result = run_worker(spec)
                if result["failures"]:
                    raise RuntimeError(f"otel-{variant}: {result['failures']} requests failed")
                before[variant] += result["before_us"]
                after[variant] += result["after_us"]
                pairs[variant] += [
                    a / b for a, b in zip(result["after_us"], result["before_us"], strict=True)
                ]
                print(
                    f"  [otel rep {rep + 1}/{reps}] {variant:7s} after/before "
                    f"{statistics.median(pairs[variant][-OTEL_BLOCKS['blocks'] :]):.3f}",
                    file=sys.stderr,
                    flush=True,
                )
    labels = {
        "control": "(control: the baseline against a copy of itself)",
        "absent": "opentelemetry not installed",
        "off": "opentelemetry-api installed, no provider",
        "on": "SDK tracer and meter providers set (nothing exported)",
    }
    n = len(pairs["off"])
    lines = [
        f"Telemetry at C=500, zero latency: client CPU per request, today's client against "
        f"the one before telemetry, in one process, alternating blocks of "
        f"{OTEL_BLOCKS['requests']:,} requests ({n} block pairs per row, {reps} processes):",
        "",
        "| today's client | baseline (us) | today (us) | today / baseline: median | quartiles |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in OTEL_VARIANTS:
        q1, _, q3 = statistics.quantiles(pairs[variant], n=4)
        lines.append(
            f"| {labels[variant]} | {statistics.median(before[variant]):,.0f} | "
            f"{statistics.median(after[variant]):,.0f} | "
            f"{statistics.median(pairs[variant]):.3f} | {q1:.3f}-{q3:.3f} |"
        )
    lines += [
        "",
        "| target | measured | holds |",
        "|---|---:|:---:|",
        _target(
            "no otel installed: CPU / before <= 1.02",
            statistics.median(pairs["absent"]),
            OTEL_LIMIT,
        ),
        _target(
            "no provider set: CPU / before <= 1.02", statistics.median(pairs["off"]), OTEL_LIMIT
        ),
        f"| (for reference) recording: CPU / before | {statistics.median(pairs['on']):.2f} | |",
    ]
    return lines


CASES: dict[str, Callable[[int], list[str]]] = {
    "cpu": case_cpu,
    "fanout": case_fanout,
    "wide": case_wide,
    "rss": case_rss,
    "otel": case_otel,
}


def machine() -> str:
    """nproc, the CPU model and the Python version, for the record."""
    model = platform.processor() or "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    else:
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            model = found.group(1).strip()
    pinned = "client and server pinned to separate CPUs" if CLIENT_PIN else "not pinned"
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
        f"on {platform.system()}, {pinned}"
    )


def write_readme(text: str) -> None:
    """Replace the results section of ``benchmarks/README.md``."""
    current = README.read_text()
    start, end = current.index(MARK_START), current.index(MARK_END)
    README.write_text(current[: start + len(MARK_START)] + "\n" + text + "\n" + current[end:])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases named (all by default), print the tables, optionally record them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", metavar="case", help=f"of {', '.join(CASES)}")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per case (default 3)")
    parser.add_argument("--readme", action="store_true", help="write benchmarks/README.md")
    parser.add_argument("--baseline", help="the otel case's client before telemetry (a git rev)")
    parser.add_argument(
        "--only", default="", help="comma-separated contenders to run (cpu, fanout; default all)"
    )
    args = parser.parse_args(argv)
    global BASELINE, ONLY
    BASELINE = args.baseline
    ONLY = frozenset(filter(None, args.only.split(",")))
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    _raise_file_limit()
    names = args.cases or list(CASES)
    started = time.perf_counter()
    sections = [f"Machine: {machine()}.", ""]
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        sections += [*CASES[name](args.reps), ""]
    took = time.perf_counter() - started
    command = "python benchmarks/run.py" + "".join(f" {n}" for n in args.cases)
    if args.reps != 3:
        command += f" --reps {args.reps}"
    if args.baseline:
        command += f" --baseline {args.baseline}"
    if args.only:
        command += f" --only {args.only}"
    sections.append(f"Command: `{command}` ({took / 60:.1f} min).")
    text = "\n".join(sections)
    print(text)
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
