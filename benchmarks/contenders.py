"""The contenders of ``run.py``, each measured alone in a fresh process.

Run by ``run.py`` as ``python benchmarks/contenders.py SPEC``, where SPEC is a
JSON object (``mode``, ``contender``, ``base_url``, ``concurrency``,
``requests``, ``warmup``); prints one JSON line with the result. Every
contender sends the same request with no retries; all but ``linkai-many``
(which bounds itself) run under the same semaphore.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

# Runs from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = "gpt-image-2"
ASPECT_RATIO = "16:9"
API_KEY = "sk-linkai-fake-key"

Send = Callable[[int], Awaitable[None]]


async def _ours(base_url: str, concurrency: int) -> tuple[Any, Send]:
    from linkai_images import AsyncImageClient

    client = AsyncImageClient(
        API_KEY, base_url=base_url, max_retries=0, max_concurrency=concurrency
    )

    async def send(i: int) -> None:
        await client.generate(f"a fox {i}", model=MODEL, aspect_ratio=ASPECT_RATIO)

    return client.aclose, send


async def _httpx(base_url: str, concurrency: int) -> tuple[Any, Send]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=httpx.Timeout(600.0, connect=10.0),
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    async def send(i: int) -> None:
        body = {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
        response = await http.post("images/generations", json=body)
        response.raise_for_status()
        response.json()

    return http.aclose, send


async def _aiohttp(base_url: str, concurrency: int) -> tuple[Any, Send]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=600.0),
    )
    url = base_url.rstrip("/") + "/images/generations"

    async def send(i: int) -> None:
        body = {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
        async with session.post(url, json=body) as response:
            response.raise_for_status()
            await response.json()

    return session.close, send


async def _openai(base_url: str, concurrency: int) -> tuple[Any, Send]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)

    async def send(i: int) -> None:
        await client.images.generate(
            model=MODEL, prompt=f"a fox {i}", extra_body={"aspect_ratio": ASPECT_RATIO}
        )

    return client.close, send


async def _transport(base_url: str, concurrency: int) -> tuple[Any, Send]:
    """Our default transport alone, as the client drives it: the floor under ``linkai``."""
    import httpx

    from linkai_images._config import USER_AGENT
    from linkai_images._http.endpoint import Endpoint
    from linkai_images._http.transport import (
        AutoTransport,
        build_transport,
        current_async_library,
    )

    transport = build_transport(concurrency)
    assert isinstance(transport, AutoTransport)
    endpoint = Endpoint.build(
        httpx.URL(base_url.rstrip("/") + "/images/generations"),
        {
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        httpx.Timeout(600.0, connect=10.0),
    )

    # On asyncio the client posts through the transport's lean path (AiohttpTransport.post);
    # on trio this contender drives the pool through httpx's transport interface.
    if current_async_library() == "asyncio":
        lean = transport.lean_post(endpoint.request(b""))
        assert lean is not None, "asyncio's transport has a lean path"

        async def post(i: int) -> None:
            body = {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
            got = await lean((json.dumps(body).encode(),), endpoint.request)
            assert isinstance(got, tuple), "an answer the lean path hands to httpx"
            status, _, _, content = got
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            json.loads(content)

        return transport.aclose, post

    async def send(i: int) -> None:
        body = {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
        request = endpoint.request(json.dumps(body).encode())
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        json.loads(response.content)

    return transport.aclose, send


async def _streams(base_url: str, concurrency: int) -> tuple[Any, Send]:
    """The floor: a bare HTTP/1.1 keep-alive client on asyncio streams, no checks, no parsing
    beyond Content-Length. Not a usable client; it shows what this machine allows."""
    url = base_url.rstrip("/") + "/images/generations"
    origin, _, path = url.partition("//")[2].partition("/")
    host, _, port = origin.partition(":")
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {origin}\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []

    async def send(i: int) -> None:
        if idle:
            reader, writer = idle.pop()
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
            opened.append(writer)
        body = json.dumps({"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO})
        data = body.encode()
        writer.write(head + str(len(data)).encode() + b"\r\n\r\n" + data)
        response_head = await reader.readuntil(b"\r\n\r\n")
        if not response_head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(response_head.split(b"\r\n", 1)[0].decode())
        length = next(
            int(line.split(b":", 1)[1])
            for line in response_head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        json.loads(await reader.readexactly(length))
        idle.append((reader, writer))

    async def close() -> None:
        for writer in opened:
            writer.close()

    return close, send


async def _trio_streams(base_url: str, concurrency: int) -> tuple[Any, Send]:
    """The floor on trio: a bare HTTP/1.1 keep-alive client on trio's socket streams, no
    checks, no parsing beyond Content-Length, no timeouts (``streams``' twin on trio)."""
    import trio

    url = base_url.rstrip("/") + "/images/generations"
    origin, _, path = url.partition("//")[2].partition("/")
    host, _, port = origin.partition(":")
    head = (
        f"POST /{path} HTTP/1.1\r\nHost: {origin}\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    idle: list[tuple[trio.SocketStream, bytearray]] = []
    opened: list[trio.SocketStream] = []

    async def send(i: int) -> None:
        if idle:
            stream, buffer = idle.pop()
        else:
            stream, buffer = await trio.open_tcp_stream(host, int(port)), bytearray()
            opened.append(stream)
        body = json.dumps({"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO})
        data = body.encode()
        await stream.send_all(head + str(len(data)).encode() + b"\r\n\r\n" + data)
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += await stream.receive_some(65536)
        response_head = bytes(buffer[:end])
        if not response_head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(response_head.split(b"\r\n", 1)[0].decode())
        length = next(
            int(line.split(b":", 1)[1])
            for line in response_head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        end += 4
        while len(buffer) < end + length:
            buffer += await stream.receive_some(65536)
        json.loads(buffer[end : end + length])
        del buffer[: end + length]
        idle.append((stream, buffer))

    async def close() -> None:
        for stream in opened:
            await stream.aclose()

    return close, send


async def _h11(base_url: str, concurrency: int) -> tuple[Any, Send]:
    """h11's state machine on trio's socket streams, no timeouts or pool logic: what h11
    alone costs over ``trio-streams`` (the design between raw httpcore and the SDK's h1)."""
    import h11
    import trio

    url = base_url.rstrip("/") + "/images/generations"
    origin, _, path = url.partition("//")[2].partition("/")
    host, _, port = origin.partition(":")
    headers = [
        ("Host", origin),
        ("Authorization", f"Bearer {API_KEY}"),
        ("Content-Type", "application/json"),
    ]
    idle: list[tuple[trio.SocketStream, h11.Connection]] = []
    opened: list[trio.SocketStream] = []

    async def send(i: int) -> None:
        if idle:
            stream, connection = idle.pop()
            connection.start_next_cycle()
        else:
            stream = await trio.open_tcp_stream(host, int(port))
            connection = h11.Connection(h11.CLIENT)
            opened.append(stream)
        body = json.dumps(
            {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
        ).encode()
        request = h11.Request(
            method="POST",
            target=f"/{path}",
            headers=[*headers, ("Content-Length", str(len(body)))],
        )
        data = connection.send(request) + connection.send(h11.Data(data=body))
        await stream.send_all(data + connection.send(h11.EndOfMessage()))
        chunks = []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                if event.status_code != 200:
                    raise RuntimeError(f"HTTP {event.status_code}")
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        json.loads(b"".join(chunks))
        idle.append((stream, connection))

    async def close() -> None:
        for stream in opened:
            await stream.aclose()

    return close, send


async def _httpcore(base_url: str, concurrency: int) -> tuple[Any, Send]:
    """Raw httpcore HTTP/1.1 connections (h11) on trio, on a stack of idle ones: no httpx,
    no client logic; what the protocol layer our pool uses costs on its own."""
    import httpcore

    url = httpcore.URL(base_url.rstrip("/") + "/images/generations")
    headers = [
        (b"Host", url.host + b":" + str(url.port).encode()),
        (b"Authorization", f"Bearer {API_KEY}".encode()),
        (b"Content-Type", b"application/json"),
    ]
    backend = httpcore.TrioBackend()
    timeout = {"connect": 10.0, "read": 600.0, "write": 600.0, "pool": 600.0}
    idle: list[httpcore.AsyncHTTP11Connection] = []
    opened: list[httpcore.AsyncHTTP11Connection] = []

    async def send(i: int) -> None:
        if idle:
            connection = idle.pop()
        else:
            stream = await backend.connect_tcp(url.host.decode(), url.port or 80)
            connection = httpcore.AsyncHTTP11Connection(
                httpcore.Origin(url.scheme, url.host, url.port or 80), stream
            )
            opened.append(connection)
        body = json.dumps(
            {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
        ).encode()
        request = httpcore.Request(
            "POST",
            url,
            headers=[*headers, (b"Content-Length", str(len(body)).encode())],
            content=body,
            extensions={"timeout": timeout},
        )
        response = await connection.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        json.loads(content)
        idle.append(connection)

    async def close() -> None:
        for connection in opened:
            await connection.aclose()

    return close, send


FACTORIES = {
    "linkai": _ours,
    "transport": _transport,
    "linkai-trio": _ours,
    "httpx": _httpx,
    "aiohttp": _aiohttp,
    "openai": _openai,
    "streams": _streams,
    "transport-trio": _transport,
    "trio-streams": _trio_streams,
    "httpcore-trio": _httpcore,
    "h11-trio": _h11,
}
#: Contenders that run on trio (the others on asyncio).
TRIO_CONTENDERS = frozenset(
    {"linkai-trio", "transport-trio", "trio-streams", "httpcore-trio", "h11-trio"}
)


async def _bounded(send: Send, start: int, n: int, concurrency: int) -> collections.Counter[str]:
    """Send ``n`` requests, at most ``concurrency`` at once; count failures by type."""
    import anyio

    failures: collections.Counter[str] = collections.Counter()
    limiter = anyio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            try:
                await send(i)
            except Exception as exc:
                failures[type(exc).__name__] += 1

    async with anyio.create_task_group() as tg:
        for i in range(start, start + n):
            tg.start_soon(one, i)
    return failures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """One contender, one case: warm up, then time ``requests`` requests."""
    contender, base_url = spec["contender"], spec["base_url"]
    concurrency, requests, warmup = spec["concurrency"], spec["requests"], spec["warmup"]
    if contender == "linkai-many":
        from linkai_images import AsyncImageClient

        client = AsyncImageClient(
            API_KEY, base_url=base_url, max_retries=0, max_concurrency=concurrency
        )
        close: Any = client.aclose

        async def run(start: int, n: int) -> collections.Counter[str]:
            prompts = [
                {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}
                for i in range(start, start + n)
            ]
            results = await client.generate_many(prompts, return_exceptions=True)
            return collections.Counter(
                type(r).__name__ for r in results if isinstance(r, BaseException)
            )
    else:
        close, send = await FACTORIES[contender](base_url, concurrency)

        async def run(start: int, n: int) -> collections.Counter[str]:
            return await _bounded(send, start, n, concurrency)

    if warmup:
        await run(0, warmup)
    gc.collect()
    cpu, wall = _cpu_seconds(), time.perf_counter()
    failures = await run(warmup, requests)
    cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
    await close()
    return {
        "cpu_us": cpu / requests * 1e6,
        "wall_s": wall,
        "failures": sum(failures.values()),
        "errors": dict(failures),
    }


async def _rss(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS growth of ``as_completed`` over lazily generated requests."""
    from linkai_images import AsyncImageClient

    def prompts(n: int) -> Iterator[dict[str, str]]:
        for i in range(n):
            yield {"model": MODEL, "prompt": f"a fox {i}", "aspect_ratio": ASPECT_RATIO}

    async with AsyncImageClient(
        API_KEY, base_url=spec["base_url"], max_retries=0, max_concurrency=spec["concurrency"]
    ) as client:

        async def drain(n: int) -> collections.Counter[str]:
            outcome: collections.Counter[str] = collections.Counter()
            async with client.as_completed(prompts(n)) as items:
                async for item in items:
                    outcome["ok" if item.ok else type(item.error).__name__] += 1
            return outcome

        await drain(2 * spec["concurrency"])
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        wall = time.perf_counter()
        outcome = await drain(spec["requests"])
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    failures = {k: v for k, v in outcome.items() if k != "ok"}
    return {
        "rss_growth_mb": (after - before) / 1024,  # ru_maxrss is in KiB on Linux
        "wall_s": wall,
        "failures": sum(failures.values()),
        "errors": failures,
    }


def _telemetry_setup(spec: dict[str, Any]) -> None:
    """The ``otel`` case's variants: what OpenTelemetry the process has."""
    otel = spec.get("otel")
    if otel == "absent":  # as if the otel extra were not installed
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif otel == "on":  # the SDK recording everything, exporting nothing
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def _import_before(root: str, name: str = "linkai_before") -> Any:
    """The baseline checkout's package, imported as ``name`` beside ``linkai_images``.

    The package imports itself only relatively, so one process can hold both.
    """
    import importlib.util

    init = Path(root) / "linkai_images" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def _ab(spec: dict[str, Any]) -> dict[str, Any]:
    """The client before telemetry (A) and today's (B) in one process, in blocks A B B A ...

    Both talk to the same fake at the same concurrency; each block's CPU time
    is measured alone. Alternating within one process takes the noise of
    separate interpreters (start-up, memory layout, a busy neighbour for a
    whole run) out of the comparison.
    """
    before = _import_before(spec["root"])
    if spec["otel"] == "control":  # the baseline against a second copy of itself
        today = _import_before(spec["root"], "linkai_control")
    else:
        import linkai_images as today

    base_url, concurrency = spec["base_url"], spec["concurrency"]
    clients = {
        name: package.AsyncImageClient(
            API_KEY, base_url=base_url, max_retries=0, max_concurrency=concurrency
        )
        for name, package in (("before", before), ("after", today))
    }
    sends: dict[str, Send] = {}
    for name, client in clients.items():

        async def send(i: int, client: Any = client) -> None:
            await client.generate(f"a fox {i}", model=MODEL, aspect_ratio=ASPECT_RATIO)

        sends[name] = send
        await _bounded(send, 0, spec["warmup"], concurrency)
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    failures = 0
    n = spec["requests"]
    for block in range(spec["blocks"]):
        order = ("before", "after") if block % 2 == 0 else ("after", "before")
        for name in order:
            gc.collect()
            started = _cpu_seconds()
            failures += sum((await _bounded(sends[name], 0, n, concurrency)).values())
            cpu[name].append((_cpu_seconds() - started) / n * 1e6)
    for client in clients.values():
        await client.aclose()
    return {"before_us": cpu["before"], "after_us": cpu["after"], "failures": failures}


def worker(spec: dict[str, Any]) -> None:
    """Child process: run one measurement and print it as one JSON line."""
    if spec.get("package_root"):  # another revision's package (bench_hotpath.py's baselines)
        sys.path.insert(0, spec["package_root"])
    _telemetry_setup(spec)
    if spec["mode"] == "ab":
        print(json.dumps(asyncio.run(_ab(spec))), flush=True)
        return
    measure = _rss if spec["mode"] == "rss" else _measure
    if spec["contender"] in TRIO_CONTENDERS:
        import anyio

        result = anyio.run(measure, spec, backend="trio")
    else:
        result = asyncio.run(measure(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
