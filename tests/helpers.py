"""Helpers shared by the test modules (importable: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition()`` until true, for at most 10 s."""
    with anyio.fail_after(10):
        # The fake's counters move in its server thread: there is no event to wait on.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)
