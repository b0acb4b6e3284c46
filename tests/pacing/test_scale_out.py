"""The issue's scale-out target: four processes sharing one limiter on a real redis-server.

Together they keep R (scaled: 600 a minute), so a fake enforcing R never
answers 429 and no window of W seconds sees more than R*W/60 + 1 starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pacing_windows import window_excess

from linkai_images.testing import FakeLinkAI

WORKER = Path(__file__).with_name("pacing_worker.py")
RATE = "600/minute"
PER_SECOND = 10.0
PROCESSES = 4
EACH = 8


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_four_processes_share_one_rate(backend: str, redis_url: str) -> None:
    """Four worker processes on one Redis prefix: 0 x 429 from a fake enforcing R, windows hold."""
    fake = FakeLinkAI(rate_limit=RATE)
    prefix = f"scale-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with fake.serve() as server:
        args = [server.base_url, fake.api_key, redis_url, prefix, RATE, str(EACH)]
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), backend, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert "ready" == worker.stdout.readline().strip()
            fake.reset()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            outputs = [worker.communicate(timeout=60)[0].strip() for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    statuses = [r.status for r in fake.requests]
    assert (["done"] * PROCESSES, PROCESSES * EACH, 0) == (
        outputs,
        len(statuses),
        statuses.count(429),
    )
    widths = [0.1, 0.25, 0.5, 1.0, 2.0]
    assert [] == window_excess(fake.starts(), PER_SECOND, widths)
