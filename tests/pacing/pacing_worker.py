"""One worker process of the scale-out test: a client on a shared Redis limiter.

Usage: python pacing_worker.py BACKEND BASE_URL API_KEY REDIS_URL PREFIX RATE COUNT

It sends one warm-up request, prints ``ready``, waits for a line on stdin,
then sends COUNT requests at concurrency 64 and prints ``done``.
"""

from __future__ import annotations

import sys

import anyio

from linkai_images import AsyncImageClient


async def main(base_url: str, key: str, redis_url: str, prefix: str, rate: str, count: int) -> None:
    """Warm up, wait for the go, send the batch."""
    async with AsyncImageClient(
        key,
        base_url=base_url,
        default_model="gpt-image-2",
        max_concurrency=64,
        rate_limit=rate,
        limiter_url=redis_url,
        limiter_prefix=prefix,
    ) as client:
        await client.generate("warm up")  # opens the connection and the limiter's
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        await client.generate_many([f"{prefix}-{i}" for i in range(count)])
        print("done", flush=True)


if __name__ == "__main__":
    backend, base_url, key, redis_url, prefix, rate, count = sys.argv[1:]
    anyio.run(main, base_url, key, redis_url, prefix, rate, int(count), backend=backend)
