"""`kill -9` a batch at random points and resume it: nothing is paid twice, nothing is lost."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from linkai_images._cli.run import slug
from linkai_images.testing import FakeServer

PROMPTS = 300
CONCURRENCY = 16
KILLS = 5
#: A listed uncertain request: ``  line 17: "the prompt": why``.
UNCERTAIN_LINE = re.compile(r'^  line (\d+): ("(?:[^"\\]|\\.)*"): ', re.MULTILINE)


def kill_at(command: list[str], env: dict[str, str], server: FakeServer, received: int) -> None:
    """Start the batch and SIGKILL it as the fake receives its ``received``-th request."""
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(6000):  # a guard against a hung test, not a timing assertion
            if server.fake.request_count >= received or child.poll() is not None:
                break
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "Traceback" not in err, err


def uncertain_lines(out: str) -> dict[int, str]:
    """The uncertain requests a summary lists: line number -> prompt."""
    section = out.partition("\nuncertain (")[2].partition("\n  to send them anyway")[0]
    return {int(number): json.loads(prompt) for number, prompt in UNCERTAIN_LINE.findall(section)}


def test_sigkill_at_five_random_points_never_pays_twice(
    linkai_server: FakeServer, tmp_path: Path
) -> None:
    """300 prompts at concurrency 16, killed 5 times: none sent twice, each saved or listed."""
    fake = linkai_server.fake
    fake.latency = lambda rng: rng.uniform(0.02, 0.08)
    prompts = [f"a kite over the sea, take {n}" for n in range(1, PROMPTS + 1)]
    source = tmp_path / "prompts.jsonl"
    source.write_text("".join(json.dumps(prompt) + "\n" for prompt in prompts))
    out_dir = tmp_path / "out"
    command = [sys.executable, "-m", "linkai_images", "batch", str(source), "--out", str(out_dir),
               "-m", "gpt-image-2", "--concurrency", str(CONCURRENCY), "--no-progress",
               "--base-url", linkai_server.base_url]  # fmt: skip
    env = {**os.environ, "LINKAI_API_KEY": fake.api_key}
    rng = random.Random(2026)
    kills = 0
    for _ in range(KILLS):
        unsent = sum(1 for prompt in prompts if fake.attempts(prompt) == 0)
        if unsent < 2:
            break
        kill_at(command, env, linkai_server, fake.request_count + rng.randint(1, unsent - 1))
        kills += 1
    assert KILLS == kills

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert [] == sorted(path.name for path in out_dir.glob(".*.part"))
    twice = [prompt for prompt in prompts if fake.attempts(prompt) > 1]
    assert [] == twice
    listed = uncertain_lines(resumed.stdout)
    saved = {
        number
        for number, prompt in enumerate(prompts, 1)
        if (out_dir / f"{number:04d}-{slug(prompt)}.png").is_file()
    }
    assert {number: prompts[number - 1] for number in listed} == listed
    assert set() == saved & set(listed)
    assert set(range(1, PROMPTS + 1)) == saved | set(listed)
    assert (1 if listed else 0) == resumed.returncode

    # Asked to, the rerun sends exactly the uncertain ones, once more each.
    resent = subprocess.run(
        [*command, "--resend-uncertain"], env=env, capture_output=True, text=True, timeout=120
    )
    assert (0, "") == (resent.returncode, resent.stderr)
    assert PROMPTS == len(list(out_dir.glob("*.png")))
    again = {number for number, prompt in enumerate(prompts, 1) if fake.attempts(prompt) > 1}
    assert set(listed) >= again
