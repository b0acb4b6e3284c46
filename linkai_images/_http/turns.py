"""A bound on the work begun per turn of the event loop, on asyncio and trio alike.

The event loop runs, in one turn, every task that became ready since the
last. When 64 answers arrive together, 64 tasks each start their next
request in the same turn (building it, opening or checking out a
connection, writing the head): about 0.2 ms each, 13 ms in all, during
which nothing else on the loop runs. On trio, 64 uploads each write a
256 KiB slice per turn (about 0.15 ms each on loopback): 10 ms per turn
for as long as they last.

A ``TurnGate`` lets ``per_turn`` tasks through per turn; the others queue,
first come first served, and go through in the turns that follow. The
first task in the queue drives it: it lets one turn pass
(``anyio.lowlevel.checkpoint``: the task runs again only after the loop
has polled for I/O and timers), then lets ``per_turn`` tasks through,
itself first, and wakes the next first task. Uncontended, ``enter`` is a
counter decrement with no await, so a quiet client pays nothing.
"""

from __future__ import annotations

import collections

import anyio
import anyio.lowlevel

__all__ = ["SLICES_PER_PASS", "SLICES_PER_TURN", "STARTS_PER_TURN", "TurnGate"]

#: Requests begun (handed to the transport) per turn of the event loop.
STARTS_PER_TURN = 16
#: Uploads let on per turn on the pool, each for ``SLICES_PER_PASS`` slices of
#: ``stream.WRITE_SLICE`` bytes (an upload sends about one slice per turn): at most
#: about 8 slices, 2 MiB, sent per turn across all uploads.
SLICES_PER_TURN = 2
#: Upload slices sent per pass through the gate.
SLICES_PER_PASS = 4


class _Waiter:
    __slots__ = ("event", "passed")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.passed = False


class TurnGate:
    """Lets at most ``per_turn`` tasks through per turn of the event loop, in order.

    Args:
        per_turn: tasks let through per turn.
    """

    __slots__ = ("_left", "_queue", "per_turn")

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError(f"per_turn must be at least 1, not {per_turn}")
        self.per_turn = per_turn
        self._left = per_turn
        self._queue: collections.deque[_Waiter] = collections.deque()

    def __repr__(self) -> str:
        return f"<TurnGate per_turn={self.per_turn}, {len(self._queue)} waiting>"

    @property
    def waiting(self) -> int:
        """Tasks queued at the gate."""
        return len(self._queue)

    async def enter(self) -> None:
        """Go through: at once while this turn has room, else in a later turn, in order."""
        if self._left > 0 and not self._queue:
            self._left -= 1
            return
        waiter = _Waiter()
        queue = self._queue
        queue.append(waiter)
        try:
            while not waiter.passed:
                if queue[0] is waiter:
                    await anyio.lowlevel.checkpoint()  # let the loop turn
                    self._left = self.per_turn
                    self._let_through()
                else:
                    await waiter.event.wait()
                    waiter.event = anyio.Event()  # woken to lead, or let through
        except BaseException:
            if not waiter.passed:
                leading = queue[0] is waiter
                queue.remove(waiter)
                if leading and queue:
                    queue[0].event.set()
            raise

    def _let_through(self) -> None:
        queue = self._queue
        while queue and self._left > 0:
            waiter = queue.popleft()
            waiter.passed = True
            waiter.event.set()
            self._left -= 1
        if queue:
            queue[0].event.set()  # the new first one drives the next turn
