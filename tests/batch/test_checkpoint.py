"""Resumable batches: the journal, fingerprints, torn lines, and nothing paid for twice."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from helpers import journal_records as records

from linkai_images import (
    AsyncImageClient,
    CheckpointError,
    ImageRequest,
    ImageResponse,
    UncertainRequestError,
)
from linkai_images._batch.checkpoint import Checkpoint, fingerprint
from linkai_images._batch.progress import ProgressEvent
from linkai_images.testing import FakeLinkAI, Fault, make_png

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]


def outcomes(path: Path) -> list[dict[str, object]]:
    """The outcome records (success or failure) of a journal, in file order."""
    return [record for record in records(path) if "ok" in record]


async def test_rerun_skips_successes_retries_failures_and_tolerates_a_torn_line(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A reordered rerun re-requests only the failures; a torn last line is skipped and mended."""
    journal = tmp_path / "run.jsonl"
    prompts = [f"p{i}" for i in range(6)]
    fake.fail(Fault.status(500), prompt="p2")
    fake.fail(Fault.status(500), prompt="p4")
    first = await client.generate_many(prompts, return_exceptions=True, checkpoint=journal)
    assert [True, True, False, True, False, True] == [isinstance(r, ImageResponse) for r in first]
    assert 6 == len(outcomes(journal))
    # A killed run left half a record behind, with no newline.
    whole = journal.read_text().splitlines()[-1]
    with journal.open("a") as file:
        file.write(whole[: len(whole) // 2])

    events: list[ProgressEvent] = []
    second = await client.generate_many(
        list(reversed(prompts)), checkpoint=journal, progress=events.append
    )
    assert [1, 1, 2, 1, 2, 1] == [fake.attempts(p) for p in prompts]
    by_prompt = dict(zip(reversed(prompts), second, strict=True))
    for prompt, earlier in zip(prompts, first, strict=True):
        if isinstance(earlier, ImageResponse):
            assert earlier.urls == by_prompt[prompt].urls
            assert earlier.created == by_prompt[prompt].created
    assert 4 == sum(event.kind == "skipped" for event in events)
    # The torn line stays on its own; the records after it parse (two intents, two outcomes).
    lines = journal.read_text().splitlines()
    assert whole[: len(whole) // 2] == lines[12]
    assert [True, True] == [json.loads(line)["ok"] for line in lines[13:] if "ok" in line]
    # Rebuilt responses read their image through the client, from the fake CDN.
    png = await by_prompt["p0"].data[0].read()
    assert png.startswith(b"\x89PNG")


async def test_the_journal_records_successes_and_failures(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Each request is an intent line, then an outcome: URLs and attempts, or the error."""
    journal = tmp_path / "run.jsonl"
    fake.fail(Fault.status(503), prompt="ok")
    fake.fail(Fault.status(500), prompt="bad")
    await client.generate_many(["ok", "bad"], return_exceptions=True, checkpoint=journal)
    written = records(journal)
    intents = {record["id"]: record for record in written if record.get("intent")}
    assert [True, True] == [written.index(intent) < 2 for intent in intents.values()]
    ok, bad = sorted(outcomes(journal), key=lambda record: record["index"])  # type: ignore[arg-type, return-value]
    assert {"v", "id", "fp", "index", "ok", "model", "images", "created", "attempts"} <= set(ok)
    assert ("ok", "gpt-image-2", ok["fp"]) == tuple(
        intents[ok["id"]][key] for key in ("prompt", "model", "fp")
    )
    assert (0, True, 2, "gpt-image-2") == (ok["index"], ok["ok"], ok["attempts"], ok["model"])
    assert ok["images"][0]["url"].startswith("http://")  # type: ignore[index]
    assert ok["fp"] == await fingerprint(ImageRequest(prompt="ok", model="gpt-image-2"))
    assert (1, False, False) == (bad["index"], bad["ok"], bad["uncertain"])
    assert {"type": "InternalServerError", "status_code": 500, "attempts": 1} == {
        key: value
        for key, value in bad["error"].items()  # type: ignore[attr-defined]
        if key != "message"
    }


async def test_repeated_identical_requests_each_keep_their_own_result(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """The same prompt twice gets two images, and a rerun returns both, requesting none."""
    journal = tmp_path / "run.jsonl"
    first = await client.generate_many(["same", "same"], checkpoint=journal)
    second = await client.generate_many(["same", "same", "same"], checkpoint=journal)
    assert 3 == fake.attempts("same")  # the third one is new
    assert sorted(first[0].urls + first[1].urls) == sorted(second[0].urls + second[1].urls)


async def test_as_completed_resumes_from_a_checkpoint(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """as_completed with a checkpoint yields earlier successes without requests."""
    journal = tmp_path / "run.jsonl"
    await client.generate_many(["a", "b"], checkpoint=journal)
    async with client.as_completed(["a", "b", "c"], checkpoint=journal) as items:
        done = {item.request.prompt: item.ok async for item in items}
    assert {"a": True, "b": True, "c": True} == done
    assert [1, 1, 1] == [fake.attempts(p) for p in "abc"]


async def test_a_checkpoint_in_use_is_refused(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """While one batch holds the checkpoint, a second run on it fails at once, sending nothing."""
    journal = tmp_path / "run.jsonl"
    holder = await Checkpoint.open(journal)
    try:
        with pytest.raises(CheckpointError, match="in use"):
            await client.generate_many(["a"], checkpoint=journal)
        with pytest.raises(CheckpointError, match="in use"):
            async with client.as_completed(["a"], checkpoint=journal):
                pass
    finally:
        await holder.aclose()
    assert 0 == fake.request_count
    assert 1 == len(await client.generate_many(["a"], checkpoint=journal))


async def test_fingerprint_is_the_checked_request_not_its_spelling() -> None:
    """Pixel size and tier+ratio are one request; prompt, model and quality tell apart."""
    base = await fingerprint(ImageRequest(prompt="p", model="gpt-image-2", size="2K"))
    assert 64 == len(base)  # type: ignore[arg-type]
    same = ImageRequest(prompt="p", model="gpt-image-2", size="2K")
    assert base == await fingerprint(same)
    others = [
        ImageRequest(prompt="q", model="gpt-image-2", size="2K"),
        ImageRequest(prompt="p", model="gpt-image-2", size="4K"),
        ImageRequest(prompt="p", model="doubao-seedream-4.5", size="2K"),
        ImageRequest(prompt="p", model="gpt-image-2", size="2K", quality="high"),
        ImageRequest(prompt="p", model="gpt-image-2", size="2K", extra_body={"n": 1}),
    ]
    assert len({base} | {await fingerprint(r) for r in others}) == 6


async def test_batch_fingerprints_requests_after_checking(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A prompt string and the same request spelled out with the default model resume each other."""
    journal = tmp_path / "run.jsonl"
    await client.generate_many(["p"], checkpoint=journal)
    await client.generate_many(
        [{"prompt": "p", "model": "gpt-image-2"}, ImageRequest(prompt="p", model="gpt-image-2")],
        checkpoint=journal,
    )
    assert 2 == fake.attempts("p")  # the first resumed; the second is a second request


async def test_reference_images_are_fingerprinted_by_content(tmp_path: Path) -> None:
    """A file, its bytes and a seekable stream of them agree; other content differs."""
    png = make_png(8, 8)
    path = tmp_path / "ref.png"
    path.write_bytes(png)
    moved = tmp_path / "moved.png"
    moved.write_bytes(png)
    other = tmp_path / "other.png"
    other.write_bytes(make_png(9, 9))

    def with_image(image: object) -> ImageRequest:
        return ImageRequest(prompt="edit", model="gpt-image-2", images=[image])

    stream = io.BytesIO(b"xyz" + png)
    stream.seek(3)  # what is sent is read from here
    keys = [
        await fingerprint(with_image(path)),
        await fingerprint(with_image(str(moved))),
        await fingerprint(with_image(png)),
        await fingerprint(with_image(stream)),
    ]
    assert 1 == len(set(keys))
    assert 3 == stream.tell()  # the stream is left where it was, for the upload
    assert keys[0] != await fingerprint(with_image(other))
    url = "https://example.com/a.png"
    assert await fingerprint(with_image(url)) == await fingerprint(with_image(url))


async def test_one_shot_streams_have_no_fingerprint() -> None:
    """A reference that cannot be read twice makes the request unresumable, not wrong."""

    class OneShot(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    request = ImageRequest(prompt="edit", model="gpt-image-2", images=[OneShot()])
    assert await fingerprint(request) is None


async def test_records_of_other_versions_and_garbage_are_ignored(tmp_path: Path) -> None:
    """Only well-formed v1 successes are offered for resuming; a non-JSON middle line warns."""
    journal = tmp_path / "run.jsonl"
    good = {"v": 1, "fp": "a" * 64, "index": 0, "ok": True, "images": [{"url": "http://x/1"}]}
    lines = [
        json.dumps({**good, "v": 2}),
        json.dumps({**good, "images": []}),
        json.dumps({**good, "ok": False}),
        "not json at all",
        json.dumps(good),
        "",
    ]
    journal.write_text("\n".join(lines))
    with pytest.warns(RuntimeWarning, match="line 4 is not JSON"):
        checkpoint = await Checkpoint.open(journal)
    try:
        assert 1 == checkpoint.recorded
        assert good == checkpoint.take("a" * 64)
        assert checkpoint.take("a" * 64) is None
    finally:
        await checkpoint.aclose()


@pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx._content.ByteStream.__aiter__':ResourceWarning"
)
async def test_a_cancelled_batch_journals_what_settled_before(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Cancel a batch mid-way: what settled is on file; what was in flight is uncertain."""
    journal = tmp_path / "run.jsonl"
    fake.fail(Fault.hang(60), prompt="stuck")
    prompts = ["a", "b", "c", "stuck"]
    settled = anyio.Event()

    def on_progress(event: ProgressEvent) -> None:
        if event.succeeded == 3:
            settled.set()

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await client.generate_many(
                    prompts, concurrency=4, checkpoint=journal, progress=on_progress
                )

            tg.start_soon(run)
            with anyio.fail_after(10):
                await settled.wait()
            scope.cancel()
    assert {"a", "b", "c"} == {prompts[r["index"]] for r in outcomes(journal)}  # type: ignore[index]
    # "stuck" was sent and never answered: it may be billed, so a rerun does not send it...
    again = await client.generate_many(prompts, checkpoint=journal, return_exceptions=True)
    assert [1, 1, 1, 1] == [fake.attempts(p) for p in prompts]
    assert isinstance(again[3], UncertainRequestError)
    # ...until asked to.
    results = await client.generate_many(prompts, checkpoint=journal, resend_uncertain=True)
    assert [1, 1, 1, 2] == [fake.attempts(p) for p in prompts]
    assert 4 == len(results)


async def test_recorded_results_are_returned_even_after_an_account_error(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Once a 406 stops the batch, requests the checkpoint answers still get their results."""
    from linkai_images import BatchAbortedError, InsufficientCreditsError

    journal = tmp_path / "run.jsonl"
    await client.generate_many(["p0", "p1"], checkpoint=journal)
    fake.credits = 0
    results = await client.generate_many(
        ["new", "p0", "p1", "other"], concurrency=1, checkpoint=journal, return_exceptions=True
    )
    expected = [InsufficientCreditsError, ImageResponse, ImageResponse, BatchAbortedError]
    assert expected == [type(result) for result in results]
    assert [1, 1, 1, 0] == [fake.attempts(p) for p in ["new", "p0", "p1", "other"]]
