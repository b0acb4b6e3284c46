"""Generate one image with the async client and save it: the README's asyncio example.

Set ``LINKAI_API_KEY`` (and ``LINKAI_BASE_URL`` for another server than the
platform, e.g. the fake: ``python -m linkai_images.testing serve``), then::

    python examples/asyncio_quickstart.py [OUTPUT]    # default: fox.png
"""

from __future__ import annotations

import asyncio
import sys

from linkai_images import AsyncImageClient


async def main(output: str) -> None:
    async with AsyncImageClient(default_model="gpt-image-2") as client:
        response = await client.generate(
            "a white fox running under the moon, watercolour", size="2K", aspect_ratio="16:9"
        )
        print(response.data[0].url, f"({response.attempts} attempt(s))")
        path = await response.data[0].save(output)
        print("saved", path)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "fox.png"))
