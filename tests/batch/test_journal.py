"""The crash-safe journal: intents on disk before sending; uncertain requests not re-sent."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import anyio
import pytest
from helpers import journal_records as records

from linkai_images import (
    AsyncImageClient,
    CheckpointError,
    FailureKind,
    ImageRequest,
    ImageResponse,
    UncertainRequestError,
)
from linkai_images._batch import checkpoint as checkpoint_module
from linkai_images._batch.checkpoint import Checkpoint, fingerprint
from linkai_images._batch.progress import ProgressEvent
from linkai_images.testing import FakeLinkAI, FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


async def interrupted_journal(path: Path, *prompts: str) -> None:
    """A journal as a run killed mid-flight leaves it: an intent for each prompt, no outcome."""
    lines = []
    for index, prompt in enumerate(prompts):
        fp = await fingerprint(ImageRequest(prompt=prompt, model="gpt-image-2"))
        lines.append(
            {
                "v": 1,
                "id": f"dead-{index}",
                "fp": fp,
                "index": index,
                "intent": True,
                "prompt": prompt,
                "model": "gpt-image-2",
            }
        )
    await anyio.Path(path).write_text("".join(json.dumps(line) + "\n" for line in lines))


async def test_an_intent_without_outcome_is_uncertain_and_not_sent(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A request an interrupted run sent is reported uncertain, not sent, until asked to."""
    journal = tmp_path / "run.jsonl"
    await interrupted_journal(journal, "p0")
    events: list[ProgressEvent] = []
    async with client.as_completed(
        ["p0", "p1"], checkpoint=journal, progress=events.append
    ) as items:
        by_prompt = {item.request.prompt: item async for item in items}
    uncertain, sent = by_prompt["p0"], by_prompt["p1"]
    assert (True, FailureKind.UNCERTAIN) == (uncertain.uncertain, uncertain.failure_kind)
    assert isinstance(uncertain.error, UncertainRequestError)
    assert uncertain.error.previous_error is None
    assert "resend_uncertain=True" in str(uncertain.error)
    assert (False, None, True) == (sent.uncertain, sent.failure_kind, sent.ok)
    assert [0, 1] == [fake.attempts("p0"), fake.attempts("p1")]
    assert ["failed"] == [e.kind for e in events if e.index == uncertain.index]

    # The default stays put on every rerun; resend_uncertain sends it, and then it is done.
    again = await client.generate_many(["p0"], checkpoint=journal, return_exceptions=True)
    assert [UncertainRequestError] == [type(result) for result in again]
    resent = await client.generate_many(["p0"], checkpoint=journal, resend_uncertain=True)
    assert 1 == fake.attempts("p0")
    intent = next(r for r in records(journal)[1:] if r.get("intent") and r["prompt"] == "p0")
    assert "dead-0" == intent["resends"]
    final = await client.generate_many(["p0"], checkpoint=journal)
    assert (1, resent[0].urls) == (fake.attempts("p0"), final[0].urls)


async def test_an_answer_lost_after_sending_is_uncertain_on_the_next_run(
    server: FakeServer, tmp_path: Path
) -> None:
    """A read timeout may be billed: the item says so, and a rerun does not send it again."""
    fake = server.fake
    fake.fail(Fault.hang(5), prompt="slow")
    journal = tmp_path / "run.jsonl"
    async with AsyncImageClient(
        fake.api_key, base_url=server.base_url, default_model="gpt-image-2", timeout=0.3
    ) as client:
        first = await client.generate_many(["slow"], checkpoint=journal, return_exceptions=True)
        async with client.as_completed(["slow"], checkpoint=journal) as items:
            [item] = [item async for item in items]
    assert isinstance(first[0], Exception)
    assert FailureKind.UNCERTAIN == FailureKind.of(first[0])
    assert [True] == [r["uncertain"] for r in records(journal) if r.get("ok") is False]
    assert isinstance(item.error, UncertainRequestError)
    assert (item.error.previous_error or "").startswith("APITimeoutError: ")
    assert 1 == fake.attempts("slow")


async def test_each_intent_is_on_disk_before_its_request_arrives(
    server: FakeServer, tmp_path: Path
) -> None:
    """When the fake receives request N, the journal file already holds N intents."""
    fake = server.fake
    journal = tmp_path / "run.jsonl"
    seen: list[tuple[int, int]] = []

    def latency(_: object) -> float:
        # Runs in the fake's thread as each request arrives: read what is on disk now.
        on_disk = journal.read_text().count('"intent":true') if journal.exists() else 0
        seen.append((fake.request_count, on_disk))
        return 0.005

    fake.latency = latency
    async with AsyncImageClient(
        fake.api_key, base_url=server.base_url, default_model="gpt-image-2", max_concurrency=16
    ) as client:
        await client.generate_many([f"p{i}" for i in range(64)], checkpoint=journal)
    assert 64 == len(seen)
    assert [] == [(received, on_disk) for received, on_disk in seen if on_disk < received]


async def test_intents_written_together_share_one_sync(
    client: AsyncImageClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: the pool's first intents, written in one loop tick, cost one fsync."""
    syncs: list[int] = []
    real_sync = checkpoint_module._sync

    def counting_sync(fd: int) -> None:
        syncs.append(fd)
        real_sync(fd)

    monkeypatch.setattr(checkpoint_module, "_sync", counting_sync)
    journal = tmp_path / "run.jsonl"
    await client.generate_many([f"p{i}" for i in range(32)], concurrency=8, checkpoint=journal)
    written = records(journal)
    assert 64 == len(written)
    assert all(record.get("intent") for record in written[:8])
    assert len(syncs) <= len(written) - 7


async def test_a_journal_that_cannot_be_written_sends_nothing(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: no intent can be recorded, so no request is sent; the run says why."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "_sync", full)
    with pytest.warns(RuntimeWarning, match="no request was sent after that"):
        results = await client.generate_many(
            ["a", "b"], checkpoint=tmp_path / "run.jsonl", return_exceptions=True
        )
    assert [CheckpointError, CheckpointError] == [type(result) for result in results]
    assert "not sent: checkpoint" in str(results[0])
    assert "No space left on device" in str(results[0])
    assert 0 == fake.request_count


async def test_replaying_the_journal(tmp_path: Path) -> None:
    """Outcomes settle intents, a resend settles the attempt it names, old records still count."""
    journal = tmp_path / "run.jsonl"
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    ok = {"ok": True, "images": [{"url": "http://cdn/1.png"}]}
    lines = [
        {"id": "r1-0", "fp": a, "intent": True},
        {"id": "r1-0", "fp": a, **ok},  # sent and done
        {"id": "r1-1", "fp": b, "intent": True},  # sent, no outcome: uncertain
        {"id": "r1-2", "fp": c, "intent": True},
        {"id": "r1-2", "fp": c, "ok": False, "uncertain": False, "error": {"type": "X"}},
        {"id": "r1-3", "fp": d, "intent": True},
        {
            "id": "r1-3",
            "fp": d,
            "ok": False,
            "uncertain": True,
            "error": {"type": "APITimeoutError", "message": "read timed out"},
        },
        {"id": "r2-0", "fp": d, "intent": True, "resends": "r1-3"},  # resent: d's first settled
        {"fp": c, **ok},  # a record of an older version of the SDK, without ids
    ]
    await anyio.Path(journal).write_text(
        "".join(json.dumps({"v": 1, **line}) + "\n" for line in lines)
    )
    checkpoint = await Checkpoint.open(journal)
    try:
        assert (2, 2) == (checkpoint.recorded, checkpoint.uncertain)
        assert checkpoint.take_uncertain(a) is None
        uncertain_b = checkpoint.take_uncertain(b)
        assert (None, "r1-1") == (checkpoint.take(b), uncertain_b and uncertain_b.id)
        assert checkpoint.take_uncertain(c) is None
        assert checkpoint.take(c) is not None
        uncertain_d = checkpoint.take_uncertain(d)
        assert uncertain_d is not None
        assert ("r2-0", None) == (uncertain_d.id, uncertain_d.previous_error)
    finally:
        await checkpoint.aclose()


async def test_a_resend_that_succeeds_is_answered_from_the_journal_afterwards(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """With resend_uncertain, the prompt asked twice in one batch is sent once more, no more."""
    journal = tmp_path / "run.jsonl"
    await interrupted_journal(journal, "same")
    results = await client.generate_many(
        ["same", "same"], checkpoint=journal, resend_uncertain=True
    )
    assert [ImageResponse, ImageResponse] == [type(result) for result in results]
    assert 2 == fake.attempts("same")
    again = await client.generate_many(["same", "same"], checkpoint=journal)
    assert 2 == fake.attempts("same")
    assert sorted(r.urls[0] for r in results) == sorted(r.urls[0] for r in again)
