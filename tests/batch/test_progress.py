"""Batch progress: events to a callable, the tqdm bar, and a missing tqdm."""

from __future__ import annotations

import builtins
import io
import sys
from typing import Any

import pytest

from linkai_images import AsyncImageClient, BatchAbortedError
from linkai_images._batch.progress import ProgressEvent, TqdmProgress, make_tracker
from linkai_images.testing import FakeLinkAI, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


async def test_callable_gets_every_step_with_running_totals(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """Each request starts and settles once; a 503 adds a retry; the totals add up."""
    events: list[ProgressEvent] = []
    fake.fail(Fault.status(503), prompt="p1")
    fake.fail(Fault.status(500), prompt="p2")
    await client.generate_many(
        ["p0", "p1", "p2"], concurrency=1, return_exceptions=True, progress=events.append
    )
    assert [
        ("started", 0),
        ("succeeded", 0),
        ("started", 1),
        ("retried", 1),
        ("succeeded", 1),
        ("started", 2),
        ("failed", 2),
    ] == [(event.kind, event.index) for event in events]
    last = events[-1]
    assert (3, 3, 2, 1, 1, 0, 0) == (
        last.total,
        last.started,
        last.succeeded,
        last.failed,
        last.retried,
        last.skipped,
        last.in_flight,
    )
    assert 3 == last.done
    assert 500 == last.error.status_code  # type: ignore[union-attr]
    assert events[1].response is not None
    assert 1 == events[3].retry.attempt  # type: ignore[union-attr]
    assert 1 == events[0].in_flight


async def test_aborted_requests_are_failed_events_that_never_started(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """After a 406 the unsent requests are reported failed, without a start."""
    events: list[ProgressEvent] = []
    fake.credits = 0
    await client.generate_many(
        ["p0", "p1", "p2"], concurrency=1, return_exceptions=True, progress=events.append
    )
    assert ["started", "failed", "failed", "failed"] == [event.kind for event in events]
    assert isinstance(events[-1].error, BatchAbortedError)
    assert (1, 3, 0) == (events[-1].started, events[-1].failed, events[-1].in_flight)


async def test_lazy_input_has_no_total(client: AsyncImageClient) -> None:
    """as_completed over a generator reports total None; over a list, its length."""
    events: list[ProgressEvent] = []
    async with client.as_completed((p for p in ["a", "b"]), progress=events.append) as items:
        _ = [item async for item in items]
    assert {None} == {event.total for event in events}
    events.clear()
    async with client.as_completed(["a", "b"], progress=events.append) as items:
        _ = [item async for item in items]
    assert {2} == {event.total for event in events}


async def test_tqdm_bar_shows_done_failed_and_retried(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """A TqdmProgress bar reaches the total, shows the counts, and is closed at the end."""
    out = io.StringIO()
    bar = TqdmProgress(file=out, mininterval=0, desc="test batch")
    fake.fail(Fault.status(503), prompt="p1")
    fake.fail(Fault.status(500), prompt="p2")
    await client.generate_many(
        [f"p{i}" for i in range(5)], concurrency=1, return_exceptions=True, progress=bar
    )
    text = out.getvalue()
    assert "test batch" in text
    assert "5/5" in text
    assert "done=4" in text
    assert "failed=1" in text
    assert "retried=1" in text
    assert bar._bar is None  # closed


def test_progress_true_without_tqdm_warns_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tqdm: progress=True warns naming `linkai-images[progress]` and runs without a bar."""
    real_import = builtins.__import__

    def no_tqdm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("tqdm"):
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    for module in [m for m in sys.modules if m.startswith("tqdm")]:
        monkeypatch.delitem(sys.modules, module)
    with pytest.warns(RuntimeWarning, match=r"linkai-images\[progress\]"):
        assert make_tracker(True, 3) is None
    with pytest.raises(ImportError, match=r"linkai-images\[progress\]"):
        TqdmProgress()


def test_progress_true_makes_a_tqdm_bar() -> None:
    """With tqdm installed, progress=True is a tracker feeding a TqdmProgress."""
    tracker = make_tracker(True, 3)
    assert tracker is not None
    assert isinstance(tracker._handler, TqdmProgress)


def test_progress_of_another_type_is_a_type_error() -> None:
    """A non-callable progress argument is refused with the accepted forms."""
    with pytest.raises(TypeError, match="callable taking a ProgressEvent"):
        make_tracker("yes", 3)  # type: ignore[arg-type]


def test_no_progress_means_no_tracker() -> None:
    """None and False cost nothing: no tracker at all."""
    assert make_tracker(None, 3) is None
    assert make_tracker(False, 3) is None
