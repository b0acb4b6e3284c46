"""Make docs/images/gallery.png: a batch against the fake, its index.html shot by Chromium.

Run from the repository root: ``python docs/tools/gallery_screenshot.py``. It needs
Debian's ``chromium`` on the PATH (as the gallery tests do). The batch has eight
prompts, one of which the fake refuses with a 409, so the page shows the failures too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from linkai_images._cli.main import main
from linkai_images.testing import FakeLinkAI, Fault

TARGET = Path(__file__).parent.parent / "images" / "gallery.png"
PROMPTS = [
    {"prompt": "a lighthouse on a cliff at dawn, oil painting", "size": "2K",
     "aspect_ratio": "16:9", "quality": "high"},
    {"prompt": "a red fox asleep in fresh snow", "size": "1K", "aspect_ratio": "1:1"},
    {"prompt": "a tea house in misty mountains, ink wash", "model": "doubao-seedream-4.5",
     "aspect_ratio": "3:4"},
    {"prompt": "a neon street market in the rain", "model": "gemini-3-pro-image-preview",
     "aspect_ratio": "9:16"},
    {"prompt": "a stained-glass owl <script>alert('hi')</script>", "size": "1K"},
    {"prompt": "sunflowers in a blue vase, impressionist", "model": "doubao-seedream-4.0",
     "aspect_ratio": "4:3"},
    {"prompt": "a whale made of clouds", "size": "2K", "aspect_ratio": "3:2"},
    {"prompt": "something the moderation refuses", "size": "1K"},
]  # fmt: skip


def main_() -> int:
    """Run the batch, write the gallery, take the screenshot."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not on the PATH", file=sys.stderr)
        return 1
    fake = FakeLinkAI(seed=3)
    fake.fail(Fault.status(409), prompt="something the moderation refuses")
    with tempfile.TemporaryDirectory() as temp, fake.serve() as server:
        work = Path(temp)
        source = work / "prompts.jsonl"
        source.write_text("".join(json.dumps(line) + "\n" for line in PROMPTS))
        out = work / "lanterns"
        api = ["--base-url", server.base_url, "--api-key", fake.api_key]
        main(["batch", str(source), "--out", str(out), "-m", "gpt-image-2", "--no-progress",
              "--max-retries", "0", *api])  # fmt: skip
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={work / 'profile'}", "--hide-scrollbars",
             "--window-size=1280,900", "--virtual-time-budget=5000",
             f"--screenshot={TARGET}", (out / "index.html").as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main_())
