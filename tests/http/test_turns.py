"""The turn gate: a bounded number of requests begun, and of upload slices sent, per turn."""

from __future__ import annotations

import collections

import anyio
import anyio.lowlevel
import pytest

from linkai_images import AsyncImageClient
from linkai_images._http import aio
from linkai_images._http import transport as transport_module
from linkai_images._http.turns import TurnGate
from linkai_images.testing import FakeServer

pytestmark = pytest.mark.anyio


class _Turns:
    """Counts turns of the event loop: a task that yields once per turn."""

    def __init__(self) -> None:
        self.count = 0
        self.running = True

    async def run(self) -> None:
        while self.running:
            await anyio.lowlevel.checkpoint()
            self.count += 1


async def _through(gate: TurnGate, callers: int) -> tuple[list[int], list[tuple[int, int]]]:
    """``callers`` tasks entering ``gate`` together.

    Returns:
        The callers in the order they arrived; (caller, turn) in the order they passed.
    """
    turns = _Turns()
    arrived: list[int] = []
    passed: list[tuple[int, int]] = []

    async def caller(number: int) -> None:
        arrived.append(number)
        await gate.enter()
        passed.append((number, turns.count))

    async with anyio.create_task_group() as tg:
        tg.start_soon(turns.run)
        await anyio.lowlevel.checkpoint()
        async with anyio.create_task_group() as callers_group:
            for number in range(callers):
                callers_group.start_soon(caller, number)
        turns.running = False
    return arrived, passed


async def test_the_gate_lets_a_bounded_number_through_per_turn_in_order() -> None:
    """50 tasks at a gate of 4 per turn: all pass, first come first through, at most 4 a turn."""
    arrived, passed = await _through(TurnGate(4), 50)
    turn_of = dict(passed)
    per_turn = collections.Counter(turn_of.values())
    assert sorted(arrived) == sorted(turn_of)
    assert 4 >= max(per_turn.values())
    assert len(per_turn) >= 50 // 4
    # First come, first through: an earlier arrival never passes a whole turn after a
    # later one (within a turn the scheduler picks the order; trio shuffles it).
    assert all(
        turn_of[earlier] <= turn_of[later] + 1
        for index, earlier in enumerate(arrived)
        for later in arrived[index + 1 :]
    )


async def test_a_quiet_gate_lets_tasks_through_without_yielding() -> None:
    """Up to the bound, ``enter`` returns at once: no other task runs in between."""
    gate = TurnGate(8)
    others_ran = False

    async def other() -> None:
        nonlocal others_ran
        others_ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        for _ in range(8):
            await gate.enter()
        assert not others_ran


async def test_a_task_cancelled_at_the_gate_does_not_hold_up_the_others() -> None:
    """Cancelling queued tasks (the first in line among them) leaves the rest to pass, in order."""
    gate = TurnGate(1)
    arrived: list[int] = []
    passed: list[int] = []

    async def caller(number: int, scope: anyio.CancelScope) -> None:
        with scope:
            arrived.append(number)
            await gate.enter()
            passed.append(number)

    scopes = [anyio.CancelScope() for _ in range(6)]
    async with anyio.create_task_group() as tg:
        for number, scope in enumerate(scopes):
            tg.start_soon(caller, number, scope)
        while len(arrived) < len(scopes):
            await anyio.lowlevel.checkpoint()
        queued = [number for number in arrived if number not in passed]
        cancelled = {queued[0], queued[2]}  # the one leading the queue, and one behind
        for number in cancelled:
            scopes[number].cancel()
    assert [number for number in arrived if number not in cancelled] == passed  # one per turn
    assert 0 == gate.waiting


def test_the_bound_must_be_positive() -> None:
    """A gate letting nobody through is refused."""
    with pytest.raises(ValueError, match="at least 1"):
        TurnGate(0)


async def test_a_batch_through_a_narrow_gate_loses_and_repeats_nothing(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 requests through a gate of 1 start and 1 slice per turn: 40 answers, 40 requests seen."""
    monkeypatch.setattr(transport_module, "STARTS_PER_TURN", 1)
    monkeypatch.setattr(aio, "STARTS_PER_TURN", 1)
    monkeypatch.setattr(transport_module, "SLICES_PER_TURN", 1)
    png = b"\x89PNG\r\n\x1a\n" + bytes(600_000)
    async with AsyncImageClient(
        server.fake.api_key, base_url=server.base_url, max_retries=0, max_concurrency=16
    ) as client:
        requests = [
            {"prompt": f"a fox {i}", "model": "gpt-image-2", "images": [png]} for i in range(40)
        ]
        results = await client.generate_many(requests)
    assert 40 == len(results)
    assert 40 == len(server.fake.requests)
    assert sorted(f"a fox {i}" for i in range(40)) == sorted(
        str(request.prompt) for request in server.fake.requests
    )
    assert {("image/png", len(png), None)} == {
        (image.mime_type, image.size, image.error)
        for request in server.fake.requests
        for image in request.images
    }
