"""A batch on trio: prompts from a lazy generator, each image saved as soon as it is ready.

``as_completed`` pulls a prompt whenever a request slot is free, so the input
may be as long as you like (even endless): memory follows the concurrency,
not the batch size. Leaving the ``async with`` early cancels what is in flight.

Run it against the platform (``LINKAI_API_KEY`` set) or the bundled fake::

    python -m linkai_images.testing serve --port 8787 --cdn-port 8788 &
    LINKAI_API_KEY=sk-linkai-fake-key \
        python examples/trio_batch.py --base-url http://127.0.0.1:8787/v1 --count 20 --out images
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import trio

from linkai_images import AsyncImageClient

SUBJECTS = ("a paper crane", "a lighthouse at dusk", "a bowl of ramen", "a red kite")


def prompts(count: int) -> Iterator[str]:
    """Prompts made one at a time, as a worker asks for the next."""
    for number in range(count):
        yield f"{SUBJECTS[number % len(SUBJECTS)]}, variation {number}"


async def run(args: argparse.Namespace) -> int:
    """Generate ``args.count`` images into ``args.out``; 0 if all succeeded, else 1."""
    out = Path(args.out)
    await trio.Path(out).mkdir(parents=True, exist_ok=True)
    saved = failed = 0
    client = AsyncImageClient(
        args.api_key,
        base_url=args.base_url,
        default_model=args.model,
        max_concurrency=args.concurrency,
    )
    async with client, client.as_completed(prompts(args.count)) as results:
        async for item in results:
            if item.response is not None:
                path = await item.response.data[0].save(out / f"{item.index:04d}.png")
                saved += 1
                print(f"#{item.index} {path} ({item.response.attempts} attempt(s))")
            else:
                failed += 1
                print(f"#{item.index} failed: {item.error}", file=sys.stderr)
    print(f"{saved} saved in {out}, {failed} failed")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the key and the base URL default to the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", default=None, help="default: $LINKAI_API_KEY")
    parser.add_argument(
        "--base-url", default=None, help="default: $LINKAI_BASE_URL, else the platform"
    )
    parser.add_argument("--model", default="gpt-image-2")
    parser.add_argument("--count", type=int, default=12, help="images to generate")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--out", default="images", help="directory for the images")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(run, parse_args()))
