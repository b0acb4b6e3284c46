"""``linkai-images batch --shard I/N``: one worker's share of a batch file.

Shard ``I`` of ``N`` takes the file's requests whose index (0-based, in file
order) modulo ``N`` is ``I``, so ``N`` workers given the same file and the
same output directory split it without overlap and without talking to each
other. Each keeps its own checkpoint (``.linkai-checkpoint.shard-I-of-N.jsonl``)
and manifest (``metadata.shard-I-of-N.jsonl``) there; images are named after
their line, which no two shards share.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TypeVar

import attrs

__all__ = ["Shard", "parse_shard"]

T = TypeVar("T")

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@attrs.frozen
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    @property
    def suffix(self) -> str:
        """What a shard's files add to their names: ``.shard-I-of-N``."""
        return f".shard-{self.index}-of-{self.count}"

    def select(self, items: Sequence[T]) -> list[T]:
        """The items whose index modulo ``count`` is ``index``."""
        return list(items[self.index :: self.count])


def parse_shard(text: str) -> Shard:
    """An argparse type: ``I/N`` with ``0 <= I < N``."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not I/N (this worker's shard I of N, counted from 0: 0/4 ... 3/4)"
        )
    index, count = int(match[1]), int(match[2])
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(
            f"shard {text!r}: I must be between 0 and N-1 (0/{max(count, 1)} ... "
            f"{max(count, 1) - 1}/{max(count, 1)})"
        )
    return Shard(index, count)
