"""Reference images at batch scale, and big inline answers: memory, CPU, wall and loop lag.

Run: ``python benchmarks/bench_refimg.py [case ...] [--reps 3] [--before DIR] [--readme]``

Cases (all by default):

- ``shared``: 256 requests that all use the same 10 MiB PNG, given as a
  path, 64 at a time, the server answering after 0.5 s (ideal wall 2.0 s);
- ``distinct``: the same with 16 distinct 10 MiB PNGs, request ``i`` using
  image ``i % 16``;
- ``b64``: one call answered with a 20 MiB image inline (``b64_json``,
  27 MiB of JSON), then ``image.read()``, three times in a row.

Contenders, each in a fresh interpreter pinned to the first CPU, the server
(``sink.py``, which swallows bodies without keeping them) in its own process
on the second; interleaved, medians of ``--reps``:

- ``linkai``: ``AsyncImageClient.generate_many`` on asyncio (aiohttp);
- ``linkai-trio``: the same on trio (the httpcore pool);
- ``before``, ``before-trio``: ``linkai`` and ``linkai-trio`` from the checkout
  in ``--before DIR`` (the SDK before the change, e.g.
  ``git archive OLD linkai_images | tar -x -C DIR``);
- ``openai``: ``AsyncOpenAI().images.generate`` under a semaphore, sending
  the data URI through ``extra_body``; the URI is built once per distinct
  image (what a careful user would do), inside the measurement;
- ``floor`` (``shared``/``distinct``): bare HTTP/1.1 on asyncio streams
  writing prebuilt bodies, no checks: the loopback bandwidth floor of this
  machine and server.

Our client is made and warmed up by one call without images before the
measurement (the transport chosen, aiohttp imported), as ``run.py`` does;
then, for every contender, a full garbage collection, so that none is
measured paying for the import's garbage (the longest GC pause during the
run is reported on its own).
Figures per run: peak RSS growth (``VmHWM`` after the run minus ``VmRSS``
before it), client CPU (``getrusage``, user + system), wall time, and the
event loop's lag: a task sleeps 1 ms at a time and records how late it
wakes up (max and p99), and the longest pause of the garbage collector.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
MARK_START, MARK_END = "<!-- refimg:start -->", "<!-- refimg:end -->"

MODEL = "gpt-image-2"
API_KEY = "sk-linkai-fake-key"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_MB = 10
REQUESTS = 256
CONCURRENCY = 64
LATENCY = 0.5
DISTINCT = 16
ANSWER_MB = 20
B64_CALLS = 3
TICK = 0.001
#: Contenders to run (``--only``); empty: all.
ONLY: set[str] = set()
BATCH_CONTENDERS = ("linkai", "linkai-trio", "before", "before-trio", "openai", "floor")
B64_CONTENDERS = ("linkai", "linkai-trio", "before", "before-trio", "openai")


def _pins() -> tuple[list[str], list[str]]:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        return ["taskset", "-c", str(allowed[0])], ["taskset", "-c", str(allowed[1])]
    return [], []


CLIENT_PIN, SERVER_PIN = _pins()


# --- the worker: one contender, one case, in a fresh process ---------------------------


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _requests(spec: dict[str, Any]) -> list[tuple[str, str]]:
    images = spec["images"]
    return [(f"a fox, style {i}", images[i % len(images)]) for i in range(spec["requests"])]


async def _linkai_client(spec: dict[str, Any]) -> Any:
    """Our client, warmed up by one call without images (transport chosen, aiohttp imported)."""
    from linkai_images import AsyncImageClient

    client = AsyncImageClient(
        API_KEY, base_url=spec["base_url"], max_retries=0, max_concurrency=spec["concurrency"]
    )
    await client.generate("warm-up", model=MODEL)
    return client


async def _linkai_batch(spec: dict[str, Any], client: Any) -> int:
    requests = [
        {"prompt": prompt, "model": MODEL, "images": [path]} for prompt, path in _requests(spec)
    ]
    results = await client.generate_many(requests, return_exceptions=True)
    await client.aclose()
    return sum(isinstance(r, BaseException) for r in results)


async def _openai_batch(spec: dict[str, Any]) -> int:
    import base64

    import anyio
    import openai

    uris: dict[str, str] = {}

    async def uri(path: str) -> str:
        if path not in uris:

            def encode() -> str:
                data = Path(path).read_bytes()
                return "data:image/png;base64," + base64.b64encode(data).decode()

            uris[path] = await anyio.to_thread.run_sync(encode)
        return uris[path]

    client = openai.AsyncOpenAI(base_url=spec["base_url"], api_key=API_KEY, max_retries=0)
    limiter = anyio.Semaphore(spec["concurrency"])
    failures = 0

    async def one(prompt: str, path: str) -> None:
        nonlocal failures
        async with limiter:
            try:
                await client.images.generate(
                    model=MODEL, prompt=prompt, extra_body={"images": [await uri(path)]}
                )
            except Exception as exc:
                failures += 1
                print(f"openai: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)

    async with anyio.create_task_group() as tg:
        for prompt, path in _requests(spec):
            tg.start_soon(one, prompt, path)
    await client.close()
    return failures


def _floor_bodies(spec: dict[str, Any]) -> dict[str, bytes]:
    import base64

    bodies = {}
    for path in spec["images"]:
        uri = "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
        bodies[path] = json.dumps({"model": MODEL, "prompt": "a fox", "images": [uri]}).encode()
    return bodies


async def _floor_batch(spec: dict[str, Any], bodies: dict[str, bytes]) -> int:
    """Bare HTTP/1.1 keep-alive on asyncio streams, bodies written 256 KiB at a time."""
    url = spec["base_url"].rstrip("/") + "/images/generations"
    origin, _, path = url.partition("//")[2].partition("/")
    host, _, port = origin.partition(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    limiter = asyncio.Semaphore(spec["concurrency"])
    failures = 0

    async def one(image: str) -> None:
        nonlocal failures
        async with limiter:
            if idle:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection(host, int(port))
                opened.append(writer)
            body = memoryview(bodies[image])
            writer.write(
                f"POST /{path} HTTP/1.1\r\nHost: {origin}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            for start in range(0, len(body), 256 * 1024):
                writer.write(body[start : start + 256 * 1024])
                await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                failures += 1
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            json.loads(await reader.readexactly(length))
            idle.append((reader, writer))

    await asyncio.gather(*(one(image) for _, image in _requests(spec)))
    for writer in opened:
        writer.close()
    return failures


async def _b64_calls(spec: dict[str, Any], client: Any) -> int:
    if client is None:
        import base64

        import anyio
        import openai

        client = openai.AsyncOpenAI(base_url=spec["base_url"], api_key=API_KEY, max_retries=0)
        for i in range(B64_CALLS):
            answer = await client.images.generate(
                model=MODEL, prompt=f"a fox {i}", response_format="b64_json"
            )
            assert answer.data
            text = answer.data[0].b64_json
            assert text
            await anyio.to_thread.run_sync(base64.b64decode, text)
        await client.close()
        return 0
    from linkai_images import AsyncImageClient

    async with AsyncImageClient(API_KEY, base_url=spec["base_url"], max_retries=0) as client:
        for i in range(B64_CALLS):
            response = await client.generate(f"a fox {i}", model=MODEL, response_format="b64_json")
            data = await response.data[0].read()
            assert len(data) == ANSWER_MB * 2**20
    return 0


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import anyio

    contender = spec["contender"]
    job: Callable[[], Awaitable[int]]
    if spec["case"] == "b64":
        client = None if contender == "openai" else await _linkai_client(spec)
        job = lambda: _b64_calls(spec, client)  # noqa: E731
    elif contender == "openai":
        job = lambda: _openai_batch(spec)  # noqa: E731
    elif contender == "floor":
        bodies = _floor_bodies(spec)
        job = lambda: _floor_batch(spec, bodies)  # noqa: E731
    else:
        client = await _linkai_client(spec)
        job = lambda: _linkai_batch(spec, client)  # noqa: E731
    lags: list[float] = []
    own: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start, cpu_start = time.perf_counter(), time.process_time()
            await anyio.sleep(TICK)
            lag = max(0.0, time.perf_counter() - start - TICK)
            lags.append(lag)
            # The share of the lag this process spent running (any thread): a lag
            # from being descheduled by other processes on a shared machine is not ours.
            own.append(min(lag, time.process_time() - cpu_start))

    # The interpreter's own pauses: a full collection scans every object of the process
    # (aiohttp, httpx, anyio and the SDK imported: tens of milliseconds on this machine).
    pauses: list[float] = []
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append(time.perf_counter() - started[0])

    # The heap settled as in a program that has run a while: the garbage of importing
    # and warming up collected now, not by a full collection during the measurement.
    gc.collect()
    gc.callbacks.append(on_gc)
    rss, cpu = _rss_now_mb(), _cpu()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.02)
        lags.clear()
        own.clear()
        wall = time.perf_counter()
        failures = await job()
        wall = time.perf_counter() - wall
        done.set()
    gc.callbacks.remove(on_gc)
    cpu = _cpu() - cpu
    lags.sort()
    lags = lags or [0.0]
    return {
        "rss_mb": _rss_peak_mb() - rss,
        "cpu_s": cpu,
        "wall_s": wall,
        "lag_max_ms": lags[-1] * 1e3,
        "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1e3,
        "lag_own_ms": max(own, default=0.0) * 1e3,
        "gc_max_ms": max(pauses, default=0.0) * 1e3,
        "failures": failures,
    }


def worker(spec: dict[str, Any]) -> None:
    """Child process: one measurement, printed as one JSON line."""
    sys.path.insert(0, spec["sdk"])
    import anyio

    if spec["contender"] in ("linkai-trio", "before-trio"):
        result = anyio.run(_measure, spec, backend="trio")
    else:
        result = anyio.run(_measure, spec, backend="asyncio")
    print(json.dumps(result), flush=True)


# --- the runner ----------------------------------------------------------------------


@contextmanager
def sink(latency: float, answer_mb: float = 0.0) -> Iterator[str]:
    """``sink.py`` in its own pinned process; yields its base URL."""
    command = [sys.executable, str(HERE / "sink.py"), "--latency", str(latency)]
    command += ["--answer-mb", str(answer_mb)]
    process = subprocess.Popen(SERVER_PIN + command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("LINKAI_BASE_URL="):
            raise RuntimeError(f"the sink did not start: {line!r}")
        yield line.partition("=")[2]
    finally:
        process.terminate()
        process.wait(10)


def make_images(directory: Path, count: int) -> list[str]:
    """``count`` distinct 10 MiB PNGs (a PNG signature, then random bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"ref{i}.png"
        if not path.exists() or path.stat().st_size != IMAGE_MB * 2**20:
            path.write_bytes(PNG_MAGIC + os.urandom(IMAGE_MB * 2**20 - len(PNG_MAGIC)))
        paths.append(str(path))
    return paths


#: Bytecode of the SDKs measured, as an installed package has it: without it every
#: module imported during a run (the batch engine at the first ``generate_many``)
#: would be compiled then, on the event loop (this machine sets PYTHONDONTWRITEBYTECODE).
PYCACHE = Path("/tmp/linkai-bench-pycache")


def _bytecode_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def compile_sdks(*roots: str) -> None:
    """Byte-compile each SDK checkout into ``PYCACHE``, as ``pip install`` would."""
    for root in roots:
        package = Path(root) / "linkai_images"
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(package)],
            env=_bytecode_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(
        CLIENT_PIN + command, capture_output=True, text=True, check=False, env=_bytecode_env()
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['contender']} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failures"]:
        print(done.stderr[-600:], file=sys.stderr)
    return result


def _run_case(
    case: str, contenders: Sequence[str], base: dict[str, Any], reps: int, before: str | None
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for rep in range(reps):
        for contender in contenders:
            earlier = contender.startswith("before")
            if (earlier and not before) or (ONLY and contender not in ONLY):
                continue
            sdk = before if earlier else str(ROOT)
            spec = {**base, "case": case, "contender": contender, "sdk": sdk}
            result = run_worker(spec)
            results[contender].append(result)
            print(
                f"  [{case} {rep + 1}/{reps}] {contender:12s} rss +{result['rss_mb']:.0f} MB, "
                f"cpu {result['cpu_s']:.2f} s, wall {result['wall_s']:.2f} s, lag max "
                f"{result['lag_max_ms']:.1f} ms (own {result['lag_own_ms']:.1f}, "
                f"gc {result['gc_max_ms']:.1f}), "
                f"failures {result['failures']}",
                file=sys.stderr,
                flush=True,
            )
    return results


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| contender | peak RSS growth (MB) | CPU (s) | wall (s) | lag max (ms) "
        "| lag p99 (ms) | own lag max (ms) | GC pause max (ms) | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for contender, runs in results.items():
        lines.append(
            f"| {contender} | {_median(runs, 'rss_mb'):,.0f} | {_median(runs, 'cpu_s'):.2f} "
            f"| {_median(runs, 'wall_s'):.2f} | {_median(runs, 'lag_max_ms'):.1f} "
            f"| {_median(runs, 'lag_p99_ms'):.1f} | {_median(runs, 'lag_own_ms'):.1f} "
            f"| {_median(runs, 'gc_max_ms'):.1f} "
            f"| {sum(r['failures'] for r in runs)} |"
        )
    return lines


def _holds(ok: bool) -> str:
    return "yes" if ok else "NO"


def case_batch(case: str, reps: int, before: str | None, images: list[str]) -> list[str]:
    chosen = images[:1] if case == "shared" else images[:DISTINCT]
    base = {"requests": REQUESTS, "concurrency": CONCURRENCY, "images": chosen}
    with sink(LATENCY) as base_url:
        results = _run_case(case, BATCH_CONTENDERS, {**base, "base_url": base_url}, reps, before)
    ideal = REQUESTS / CONCURRENCY * LATENCY
    encoded_mb = (IMAGE_MB * 2**20 + 2) // 3 * 4 / 1e6 * 1e6 / 2**20
    floor = _median(results["floor"], "wall_s") if results.get("floor") else float("nan")
    title = (
        f"{REQUESTS} requests sharing one {IMAGE_MB} MiB PNG"
        if case == "shared"
        else f"{DISTINCT} distinct {IMAGE_MB} MiB PNGs over {REQUESTS} requests"
    )
    lines = [
        f"**{case}**: {title}, {CONCURRENCY} at a time, {LATENCY} s latency; "
        f"ideal wall {ideal:.1f} s (median of {reps}):",
        "",
        *_table(results),
        "",
        "| target | measured | holds |",
        "|---|---:|:---:|",
    ]
    for name in ("linkai", "linkai-trio"):
        runs = results.get(name)
        if not runs:
            continue
        rss, lag = _median(runs, "rss_mb"), _median(runs, "lag_max_ms")
        if case == "shared":
            wall, cpu = _median(runs, "wall_s"), _median(runs, "cpu_s")
            bound = max(ideal, floor)
            lines += [
                f"| {name}: peak RSS growth <= 150 MB | {rss:.0f} MB | {_holds(rss <= 150)} |",
                f"| {name}: client CPU <= 1.5 s | {cpu:.2f} s | {_holds(cpu <= 1.5)} |",
                f"| {name}: wall <= 1.3 x max(ideal {ideal:.1f} s, floor {floor:.2f} s) "
                f"| {wall / bound:.2f} x | {_holds(wall <= 1.3 * bound)} |",
            ]
        else:
            limit = DISTINCT * encoded_mb + 100
            lines.append(
                f"| {name}: peak RSS growth <= {DISTINCT} x {encoded_mb:.1f} + 100 MB "
                f"= {limit:.0f} MB | {rss:.0f} MB | {_holds(rss <= limit)} |"
            )
        lines.append(f"| {name}: loop lag max <= 10 ms | {lag:.1f} ms | {_holds(lag <= 10)} |")
    return lines


def case_b64(reps: int, before: str | None) -> list[str]:
    base = {"requests": B64_CALLS, "concurrency": 1, "images": []}
    with sink(0.0, ANSWER_MB) as base_url:
        results = _run_case("b64", B64_CONTENDERS, {**base, "base_url": base_url}, reps, before)
    lines = [
        f"**b64**: {B64_CALLS} calls in a row, each answered with a {ANSWER_MB} MiB image "
        f"inline (b64_json), then `read()` (median of {reps}):",
        "",
        *_table(results),
        "",
        "| target | measured | holds |",
        "|---|---:|:---:|",
    ]
    for name in ("linkai", "linkai-trio"):
        if not results.get(name):
            continue
        lag = _median(results[name], "lag_max_ms")
        lines.append(f"| {name}: loop lag max <= 10 ms | {lag:.1f} ms | {_holds(lag <= 10)} |")
    return lines


def write_readme(text: str) -> None:
    current = README.read_text()
    start, end = current.index(MARK_START), current.index(MARK_END)
    README.write_text(current[: start + len(MARK_START)] + "\n" + text + "\n" + current[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="of shared, distinct, b64 (default all)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", help="a directory holding the SDK before the change")
    parser.add_argument("--images", default="/tmp/linkai-bench-images")
    parser.add_argument("--only", help="comma-separated contenders to run (default all)")
    parser.add_argument("--readme", action="store_true", help="record in benchmarks/README.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    cases = args.cases or ["shared", "distinct", "b64"]
    if args.only:
        ONLY.update(args.only.split(","))
    images = make_images(Path(args.images), DISTINCT)
    compile_sdks(str(ROOT), *([args.before] if args.before else []))
    started = time.perf_counter()
    sections: list[str] = []
    for case in cases:
        print(f"running {case} ...", file=sys.stderr, flush=True)
        if case == "b64":
            sections += [*case_b64(args.reps, args.before), ""]
        else:
            sections += [*case_batch(case, args.reps, args.before, images), ""]
    command = "python benchmarks/bench_refimg.py" + "".join(f" {c}" for c in args.cases)
    if args.reps != 3:
        command += f" --reps {args.reps}"
    if args.before:
        command += " --before DIR"
    took = (time.perf_counter() - started) / 60
    sections.append(f"Command: `{command}` ({took:.1f} min).")
    text = "\n".join(sections)
    print(text)
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
