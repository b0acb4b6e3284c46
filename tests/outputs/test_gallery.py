"""index.html: a self-contained gallery, checked in real headless Chromium."""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from linkai_images._outputs.gallery import render_gallery, write_gallery
from linkai_images._outputs.manifest import write_rows
from linkai_images.testing._png import make_png

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = "a fox <script>document.title='pwned'</script> & <b>friends</b>"
# A page beside the gallery that frames it, waits for every image, and reports in its own DOM.
CHECK_PAGE = """<!doctype html><html><body>
<iframe id="g" src="index.html" width="1000" height="800"></iframe><pre id="out">pending</pre>
<script>
const frame = document.getElementById("g");
frame.onload = async () => {
  const doc = frame.contentDocument;
  const images = [...doc.images];
  images.forEach((image) => { image.loading = "eager"; });
  await Promise.all(images.map((image) => image.complete ? null :
    new Promise((done) => { image.onload = image.onerror = done; })));
  document.getElementById("out").textContent = JSON.stringify({
    images: images.length,
    broken: images.filter((image) => !(image.complete && image.naturalWidth > 0)).length,
    scripts: doc.querySelectorAll("script").length,
    title: doc.title,
    text: doc.body.innerText,
  });
};
</script></body></html>"""


def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return done.stdout


def make_output(directory: Path) -> None:
    """A batch output directory: three images (one with a hostile prompt) and two failures."""
    rows = []
    for number, (colour, prompt) in enumerate(
        [((200, 60, 60), HOSTILE), ((60, 180, 90), "green hills"), ((60, 80, 200), "a blue sea")],
        1,
    ):
        name = f"{number:04d}-image #{number}.png"  # a space and a '#' must survive as a URL
        (directory / name).write_bytes(make_png(96, 64, colour))
        rows.append({"file_name": name, "prompt": prompt, "model": "gpt-image-2", "size": "1K",
                     "aspect_ratio": "3:2", "quality": "high", "reference_images": [],
                     "width": 96, "height": 64, "batch": "<i>night</i>"})  # fmt: skip
    write_rows(directory / "metadata.jsonl", rows)
    write_rows(
        directory / ".linkai-failures.jsonl",
        [
            {"label": "line 4", "prompt": "a storm", "model": "gpt-image-2", "error": "the API "
             "refused the request (409): moderation"},
            {"label": "line 5", "prompt": "<img src=x onerror=alert(1)>", "model": "gpt-image-2",
             "error": "<script>alert(2)</script>"},
        ],
    )  # fmt: skip


def check(directory: Path, profile: Path) -> dict[str, object]:
    """Load the gallery in Chromium and return what the check page saw."""
    (directory / "check.html").write_text(CHECK_PAGE)
    dom = chromium(
        profile,
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        (directory / "check.html").as_uri(),
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None, dom
    result: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return result


def test_every_image_loads_and_hostile_text_stays_text(tmp_path: Path) -> None:
    """In Chromium: 3 images, none broken, no script element, prompts and reasons as text."""
    make_output(tmp_path)
    summary = write_gallery(tmp_path)
    assert (3, 2) == (summary.images, summary.failures)
    seen = check(tmp_path, tmp_path / "profile")
    assert (3, 0, 0) == (seen["images"], seen["broken"], seen["scripts"])
    assert tmp_path.name == seen["title"]  # the hostile prompt did not run
    text = str(seen["text"])
    for shown in (
        HOSTILE,
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "batch: <i>night</i>",
        "line 4",
        "(409): moderation",
        "3 images, 2 failed",
    ):
        assert shown in text  # fmt: skip


def test_the_check_sees_a_broken_image(tmp_path: Path) -> None:
    """The browser check is real: an image whose file is gone counts as broken."""
    make_output(tmp_path)
    write_gallery(tmp_path)
    next(tmp_path.glob("0002-*.png")).unlink()
    seen = check(tmp_path, tmp_path / "profile")
    assert (3, 1) == (seen["images"], seen["broken"])


def test_the_page_renders_to_a_screenshot(tmp_path: Path) -> None:
    """Chromium renders the page to a PNG of the window's size with the images' colours in it."""
    make_output(tmp_path)
    write_gallery(tmp_path)
    shot = tmp_path / "shot.png"
    chromium(
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=900,600",
        "--virtual-time-budget=5000",
        f"--screenshot={shot}",
        (tmp_path / "index.html").as_uri(),
    )
    with Image.open(io.BytesIO(shot.read_bytes())) as image:
        assert (900, 600) == image.size
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20) or []}
    assert {(200, 60, 60), (60, 180, 90), (60, 80, 200)} <= colours


def test_the_page_loads_nothing_from_outside() -> None:
    """No URL with a scheme, no script, and a policy that forbids both."""
    page = render_gallery(
        [{"file_name": "javascript:alert(1).png", "prompt": "p"}],
        [{"label": "line 1", "error": "<script>x</script>"}],
    )
    assert [] == re.findall(r"(?:src|href)=\"[a-z]+:", page)
    assert "<script" not in page
    assert "default-src 'none'" in page
