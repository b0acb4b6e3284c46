"""client.plan (nothing sent) and the spending cap of generate_many / as_completed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import attrs
import pytest

from linkai_images import (
    AsyncImageClient,
    BatchPlan,
    CostLimitError,
    ImageRequest,
    PlanGroup,
    Prices,
    RequestValidationError,
)
from linkai_images._batch.checkpoint import intent_record
from linkai_images._batch.fingerprint import fingerprint
from linkai_images.testing import FakeLinkAI, FakeServer, make_png

pytestmark = pytest.mark.anyio

PRICES = {"currency": "USD", "models": {"gpt-image-2": {"1K": 0.25, "2K": 1.0}}}


async def test_plan_counts_groups_references_and_cost(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Groups by model/size/quality, distinct references and their bytes, the cost; nothing sent."""
    cat = tmp_path / "cat.png"
    cat.write_bytes(make_png(4, 4))
    data_uri = "data:image/png;base64," + base64.b64encode(make_png(2, 2)).decode()
    requests = [
        {"prompt": "a", "size": "1K", "images": [cat, "https://example.com/dog.png"]},
        {"prompt": "b", "size": "1K", "images": [str(cat)]},  # the same file again
        {"prompt": "c", "images": [data_uri]},  # the model's default size: 2K
        {"prompt": "d", "quality": "high"},
        {"prompt": "e", "model": "doubao-seedream-4.5"},  # no price
        {"prompt": "f", "size": "3K"},  # invalid for gpt-image-2
    ]
    plan = await client.plan(requests, prices=PRICES)
    assert BatchPlan(
        requests=6,
        invalid=((5, plan.invalid[0][1]),),
        groups=(
            PlanGroup(model="doubao-seedream-4.5", size="2K", quality=None, count=1, to_send=1),
            PlanGroup(model="gpt-image-2", size="1K", quality="medium", count=2, to_send=2,
                      unit_price=0.25, cost=0.5),
            PlanGroup(model="gpt-image-2", size="2K", quality="high", count=1, to_send=1,
                      unit_price=1.0, cost=1.0),
            PlanGroup(model="gpt-image-2", size="2K", quality="medium", count=1, to_send=1,
                      unit_price=1.0, cost=1.0),
        ),
        reference_images=3,
        reference_bytes=len(make_png(4, 4)) + len(make_png(2, 2)),
        remote_references=1,
        resumed=0,
        to_send=5,
        estimated_cost=2.5,
        unpriced=1,
        currency="USD",
    ) == plan  # fmt: skip
    assert "3K" in plan.invalid[0][1]
    assert 0 == fake.request_count


async def test_plan_counts_what_a_resume_skips(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """With the batch's checkpoint, requests already done are counted out of the cost."""
    journal = tmp_path / "run.jsonl"
    await client.generate_many(["p0", "p1"], checkpoint=journal)
    plan = await client.plan(["p0", "p1", "p1", "p2"], prices=PRICES, checkpoint=journal)
    assert (1, 2, 2, 2.0) == (plan.valid - 3, plan.resumed, plan.to_send, plan.estimated_cost)
    assert 2 == fake.request_count  # the plan sent nothing


async def test_a_plan_is_frozen(client: AsyncImageClient) -> None:
    """BatchPlan is a frozen value."""
    plan = await client.plan(["p"])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        plan.to_send = 0  # type: ignore[misc]
    assert (None, 1) == (plan.estimated_cost, plan.to_send)


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_max_cost_stops_new_launches(
    client: AsyncImageClient, fake: FakeLinkAI, concurrency: int
) -> None:
    """At 1.0 an image and max_cost=2.5, two requests are sent and the rest end unsent."""
    results = await client.generate_many(
        [f"p{i}" for i in range(5)],
        concurrency=concurrency,
        prices=PRICES,
        max_cost=2.5,
        return_exceptions=True,
    )
    assert 2 == fake.request_count
    refused = [r for r in results if isinstance(r, CostLimitError)]
    assert (3, 2.5, 2.0) == (len(refused), refused[0].max_cost, refused[0].spent)


async def test_results_from_the_checkpoint_cost_nothing(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A resumed batch counts only what it sends against max_cost."""
    journal = tmp_path / "run.jsonl"
    await client.generate_many(["p0", "p1"], checkpoint=journal)
    results = await client.generate_many(
        [f"p{i}" for i in range(5)],
        concurrency=1,
        checkpoint=journal,
        prices=Prices.from_dict(PRICES),
        max_cost=2,
        return_exceptions=True,
    )
    assert 4 == fake.request_count
    assert ["ok", "ok", "ok", "ok", "CostLimitError"] == [
        type(r).__name__ if isinstance(r, Exception) else "ok" for r in results
    ]


async def test_as_completed_obeys_max_cost_too(
    client: AsyncImageClient, fake: FakeLinkAI, tmp_path: Path
) -> None:
    """as_completed with a prices file: one request within the cap, the others unsent."""
    (tmp_path / "prices.toml").write_text('[models]\n"gpt-image-2" = 0.5\n')
    prompts = (f"p{i}" for i in range(4))
    async with client.as_completed(
        prompts, concurrency=2, prices=tmp_path / "prices.toml", max_cost=0.9
    ) as items:
        kinds = sorted([type(item.error).__name__ async for item in items])
    assert (1, ["CostLimitError"] * 3 + ["NoneType"]) == (fake.request_count, kinds)


async def test_a_request_without_a_price_sends_nothing(
    client: AsyncImageClient, fake: FakeLinkAI
) -> None:
    """With max_cost, every request needs a price: one without fails the batch before sending."""
    requests = [ImageRequest(prompt="a"), ImageRequest(prompt="b", size="4K")]
    with pytest.raises(RequestValidationError, match="request 1: no price for gpt-image-2 at 4K"):
        await client.generate_many(requests, prices=PRICES, max_cost=10)
    assert 0 == fake.request_count


async def test_max_cost_without_prices_is_refused(client: AsyncImageClient) -> None:
    """max_cost alone is a ValueError at the call: the SDK has no prices of its own."""
    with pytest.raises(ValueError, match="max_cost needs prices"):
        await client.generate_many(["a"], max_cost=1)
    with pytest.raises(ValueError, match="max_cost needs prices"):
        client.as_completed(["a"], max_cost=1)


def test_the_blocking_client_plans_and_caps(server: FakeServer, fake: FakeLinkAI) -> None:
    """ImageClient.plan and generate_many(max_cost=...) work the same, blocking."""
    from linkai_images import ImageClient

    with ImageClient(
        fake.api_key,
        base_url=server.base_url,
        default_model="gpt-image-2",
    ) as blocking:
        plan = blocking.plan(["a", "b"], prices=PRICES)
        results = blocking.generate_many(
            ["a", "b"], prices=PRICES, max_cost=1, return_exceptions=True
        )
    assert (2.0, 1) == (plan.estimated_cost, fake.request_count)
    assert isinstance(results[1], CostLimitError)


async def test_plan_counts_uncertain_requests(client: AsyncImageClient, tmp_path: Path) -> None:
    """A request sent by an earlier run with no outcome on file is uncertain, not to send."""
    journal = tmp_path / "run.jsonl"
    request = client.check(ImageRequest(prompt="p0"))
    fp = await fingerprint(request)
    assert fp is not None
    journal.write_text(json.dumps(intent_record("run-0", fp, 0, request)) + "\n")
    plan = await client.plan(["p0", "p1"], prices=PRICES, checkpoint=journal)
    assert (1, 0, 1, 1.0) == (plan.uncertain, plan.resumed, plan.to_send, plan.estimated_cost)
