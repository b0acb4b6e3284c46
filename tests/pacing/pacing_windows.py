"""Counting starts in windows, for the pacing tests (imported by them; not a test module)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def most_in_window(times: Sequence[float], width: float) -> int:
    """The most starts in any closed window of ``width`` seconds."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, start + width) - i for i, start in enumerate(ordered)),
        default=0,
    )


def window_excess(
    times: Sequence[float], per_second: float, widths: Sequence[float]
) -> list[tuple[float, int, float]]:
    """The windows breaking the bound R*W + 1: ``(width, starts, bound)`` for each."""
    found = []
    for width in widths:
        bound = round(per_second * width, 9) + 1
        starts = most_in_window(times, width)
        if starts > bound:
            found.append((width, starts, bound))
    return found
