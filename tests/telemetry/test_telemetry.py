"""OpenTelemetry: the spans, events and metrics a client records, and what it never records."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from linkai_images import (
    AsyncImageClient,
    BadRequestError,
    ImageClient,
    ImageRequest,
    RetryBudget,
)
from linkai_images.testing import FakeServer, Fault, make_png

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_backoff")]

PROMPT = "a lighthouse at dusk, secret-prompt-words"


class Recorded:
    """A tracer provider and a meter provider recording in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans, oldest first, optionally only those called ``name``."""
        found = self.exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` (empty when it recorded nothing)."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def close(self) -> None:
        """Shut both providers down."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """Providers recording in memory, shut down after the test."""
    providers = Recorded()
    yield providers
    providers.close()


def _client(server: FakeServer, **options: Any) -> AsyncImageClient:
    """A client on the served fake, ``gpt-image-2`` by default, with ``options``."""
    return AsyncImageClient(
        server.fake.api_key, base_url=server.base_url, default_model="gpt-image-2", **options
    )


@pytest.fixture
async def traced(server: FakeServer, recorded: Recorded) -> AsyncIterator[AsyncImageClient]:
    """A client on the served fake recording into ``recorded``."""
    async with _client(
        server,
        max_concurrency=4,
        tracer_provider=recorded.tracer_provider,
        meter_provider=recorded.meter_provider,
    ) as running:
        yield running


def _port(server: FakeServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1].split("/")[0])


def _everything(recorded: Recorded) -> str:
    """Every attribute, event and status text recorded, spans and metrics, as one string."""
    parts: list[str] = []
    for span in recorded.spans():
        parts += [span.name, repr(dict(span.attributes or {})), str(span.status.description)]
        parts += [f"{event.name} {dict(event.attributes or {})!r}" for event in span.events]
    data = recorded.reader.get_metrics_data()
    if data is not None:  # None: no metric was recorded to this provider
        parts.append(data.to_json())
    return "\n".join(parts)


async def test_a_call_is_one_client_span_with_the_genai_attributes(
    traced: AsyncImageClient, server: FakeServer, recorded: Recorded
) -> None:
    """A generate call is a span named for its operation and model, with the request's settings."""
    response = await traced.generate("a cat", size="2K", aspect_ratio="16:9", quality="high")

    [span] = recorded.spans("generate_content gpt-image-2")
    assert trace.SpanKind.CLIENT == span.kind
    assert {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.output.type": "image",
        "gen_ai.provider.name": "linkai",
        "gen_ai.request.model": "gpt-image-2",
        "linkai.image.size": "2K",
        "linkai.image.aspect_ratio": "16:9",
        "linkai.image.quality": "high",
        "linkai.image.reference_count": 0,
        "linkai.image.count": 1,
        "linkai.attempts": 1,
        "linkai.request_id": response.request_id,
        "server.address": "127.0.0.1",
        "server.port": _port(server),
    } == dict(span.attributes or {})
    assert trace.StatusCode.UNSET == span.status.status_code


async def test_each_http_attempt_is_a_child_span_and_each_retry_an_event(
    traced: AsyncImageClient, server: FakeServer, recorded: Recorded
) -> None:
    """A call retried after a 503 has two POST children, and one retry event with cause and wait."""
    server.fake.fail(Fault.status(503, retry_after=0), times=1)

    await traced.generate("a cat")

    [call] = recorded.spans("generate_content gpt-image-2")
    first, second = recorded.spans("POST")
    assert call.context is not None
    assert [call.context.span_id] * 2 == [s.parent.span_id for s in (first, second) if s.parent]
    url = f"{server.base_url}/images/generations"
    assert {
        "http.request.method": "POST",
        "http.response.status_code": 503,
        "error.type": "503",
        "server.address": "127.0.0.1",
        "server.port": _port(server),
        "url.full": url,
    } == dict(first.attributes or {})
    assert trace.StatusCode.ERROR == first.status.status_code
    assert 1 == (second.attributes or {})["http.request.resend_count"]
    assert trace.StatusCode.UNSET == second.status.status_code
    [event] = call.events
    assert "retry" == event.name
    assert {
        "linkai.retry.attempt": 1,
        "linkai.retry.wait": 0.0,
        "linkai.retry.retry_after": 0.0,
        "error.type": "linkai_images.ServiceUnavailableError",
        "http.response.status_code": 503,
    } == dict(event.attributes or {})
    assert 2 == (call.attributes or {})["linkai.attempts"]


async def test_a_failed_call_has_error_type_and_an_error_status(
    traced: AsyncImageClient, server: FakeServer, recorded: Recorded
) -> None:
    """A call that fails marks its span with the error's class, as users import it."""
    server.fake.fail(Fault.status(400))

    with pytest.raises(BadRequestError):
        await traced.generate("a cat")

    [call] = recorded.spans("generate_content gpt-image-2")
    assert "linkai_images.BadRequestError" == (call.attributes or {})["error.type"]
    assert trace.StatusCode.ERROR == call.status.status_code
    [duration] = recorded.points("gen_ai.client.operation.duration")
    assert "linkai_images.BadRequestError" == duration.attributes["error.type"]


async def test_the_call_span_nests_in_the_callers_span(
    traced: AsyncImageClient, recorded: Recorded
) -> None:
    """A span the application has open when it calls generate is the parent of the call's span."""
    tracer = recorded.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request") as outer:
        await traced.generate("a cat")

    [call] = recorded.spans("generate_content gpt-image-2")
    assert call.parent is not None
    assert outer.get_span_context().span_id == call.parent.span_id


async def test_the_key_image_data_prompt_and_error_messages_are_never_recorded(
    traced: AsyncImageClient, server: FakeServer, recorded: Recorded
) -> None:
    """By default no span or metric holds the key, a reference or result image, or the prompt."""
    reference = make_png(3, 2, (1, 2, 3))
    server.fake.fail(Fault.status(503, message=f"overloaded while drawing {PROMPT}"), times=1)
    server.fake.fail(Fault.status(400, message=f"refused: {PROMPT}"), prompt="second " + PROMPT)

    response = await traced.generate(PROMPT, images=[reference], response_format="b64_json")
    with pytest.raises(BadRequestError):
        await traced.generate("second " + PROMPT)

    recorded_text = _everything(recorded)
    [image] = response.data
    assert image.b64_json is not None
    secrets = {
        "key": server.fake.api_key,
        "prompt": "secret-prompt-words",
        "reference": base64.b64encode(reference).decode()[:40],
        "result": image.b64_json[:40],
    }
    assert dict.fromkeys(secrets, False) == {
        name: value in recorded_text for name, value in secrets.items()
    }
    assert 2 == len(recorded.spans("generate_content gpt-image-2"))  # both calls were traced


async def test_capture_prompts_records_the_prompt_as_input_messages(
    server: FakeServer, recorded: Recorded
) -> None:
    """With capture_prompts=True the prompt is on the span as gen_ai.input.messages."""
    async with _client(
        server, capture_prompts=True, tracer_provider=recorded.tracer_provider
    ) as client:
        await client.generate(PROMPT)

    [call] = recorded.spans("generate_content gpt-image-2")
    expected = (
        '[{"role": "user", "parts": [{"type": "text", "content": "a lighthouse at dusk, '
        'secret-prompt-words"}]}]'
    )
    assert expected == (call.attributes or {})["gen_ai.input.messages"]
    assert server.fake.api_key not in _everything(recorded)


async def test_capture_prompts_also_records_error_messages(
    server: FakeServer, recorded: Recorded
) -> None:
    """With capture_prompts=True a failure's message is on the span: status and exception event."""
    server.fake.fail(Fault.status(400, message="the prompt is too vague"))
    async with _client(
        server, capture_prompts=True, tracer_provider=recorded.tracer_provider
    ) as client:
        with pytest.raises(BadRequestError):
            await client.generate(PROMPT)

    [call] = recorded.spans("generate_content gpt-image-2")
    assert "the prompt is too vague" in str(call.status.description)
    [event] = call.events
    assert ("exception", "linkai_images.BadRequestError") == (
        event.name,
        (event.attributes or {})["exception.type"],
    )


async def test_a_batch_is_a_span_over_its_calls_with_counts_by_outcome(
    traced: AsyncImageClient, server: FakeServer, recorded: Recorded
) -> None:
    """generate_many opens one span, parent of every call, and counts successes and failures."""
    server.fake.fail(Fault.status(400), prompt="bad")

    await traced.generate_many(["one", "two", "bad"], return_exceptions=True)

    [batch] = recorded.spans("generate_many")
    calls = recorded.spans("generate_content gpt-image-2")
    assert batch.context is not None
    assert [batch.context.span_id] * 3 == [call.parent.span_id for call in calls if call.parent]
    assert {
        "gen_ai.provider.name": "linkai",
        "server.address": "127.0.0.1",
        "linkai.batch.concurrency": 4,
        "linkai.batch.size": 3,
        "linkai.batch.succeeded": 2,
        "linkai.batch.failed": 1,
        "linkai.batch.invalid": 0,
        "linkai.batch.aborted": 0,
        "linkai.batch.over_budget": 0,
        "linkai.batch.from_checkpoint": 0,
    } == dict(batch.attributes or {})


async def test_as_completed_counts_invalid_requests_and_ends_its_span_on_exit(
    traced: AsyncImageClient, recorded: Recorded
) -> None:
    """as_completed's span ends when the block is left, with invalid requests counted."""
    requests = [ImageRequest(prompt="one"), {"prompt": "two", "size": "9K"}]
    async with traced.as_completed(requests) as results:
        outcomes = sorted([item.ok async for item in results])

    assert [False, True] == outcomes
    [batch] = recorded.spans("as_completed")
    attributes = dict(batch.attributes or {})
    assert (1, 1, 0) == (
        attributes["linkai.batch.succeeded"],
        attributes["linkai.batch.invalid"],
        attributes["linkai.batch.failed"],
    )


async def test_metrics_record_duration_attempts_slots_and_the_retry_budget(
    server: FakeServer, recorded: Recorded
) -> None:
    """Durations by model and outcome, attempts by outcome, in-flight and queued back to zero."""
    server.fake.fail(Fault.status(503), times=1)
    budget = RetryBudget(retry_ratio=0.5, min_retries_per_second=1.0, window=10.0)
    async with (
        _client(
            server,
            max_concurrency=1,  # the second call queues behind the first
            retry_budget=budget,
            meter_provider=recorded.meter_provider,
        ) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.generate, "a cat")
        tg.start_soon(client.generate, "a dog")

    semconv = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "linkai",
        "gen_ai.request.model": "gpt-image-2",
        "server.address": "127.0.0.1",
    }
    [duration] = recorded.points("gen_ai.client.operation.duration")
    assert (semconv, 2) == (dict(duration.attributes), duration.count)
    [queued] = recorded.points("linkai.client.queued_requests")
    assert ({"gen_ai.request.model": "gpt-image-2", "server.address": "127.0.0.1"}, 0) == (
        dict(queued.attributes),
        queued.value,
    )
    attempts = {
        point.attributes.get("error.type", "ok"): point.value
        for point in recorded.points("linkai.client.attempts")
    }
    assert {"503": 1, "ok": 2} == attempts
    assert [0] == [point.value for point in recorded.points("linkai.client.active_requests")]
    [wait] = recorded.points("linkai.client.limiter.wait")
    assert 3 == wait.count
    [available] = recorded.points("linkai.client.retry_budget.available")
    assert budget.available == available.value


async def test_the_wait_for_the_rate_limit_is_measured_per_attempt(
    server: FakeServer, recorded: Recorded
) -> None:
    """With a rate limit, each attempt's wait for its turn is recorded in pacing.wait."""
    async with _client(
        server,
        rate_limit="1000/second",
        tracer_provider=recorded.tracer_provider,
        meter_provider=recorded.meter_provider,
    ) as client:
        await client.generate("a cat")
        await client.generate("a dog")

    [paced] = recorded.points("linkai.client.pacing.wait")
    assert 2 == paced.count
    assert 2 == len(recorded.spans("POST"))


async def test_without_the_opentelemetry_api_the_client_records_nothing_and_works(
    server: FakeServer, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the otel extra, a client given providers still generates, and records nothing."""
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # import fails, as if absent
    async with _client(
        server,
        tracer_provider=recorded.tracer_provider,
        meter_provider=recorded.meter_provider,
    ) as client:
        response = await client.generate("a cat")

    assert 1 == response.attempts
    assert [] == recorded.spans()


def test_the_blocking_client_records_the_same_spans(server: FakeServer, recorded: Recorded) -> None:
    """ImageClient records the same spans, nested in the calling thread's current span."""
    tracer = recorded.tracer_provider.get_tracer("app")
    with (
        ImageClient(
            server.fake.api_key,
            base_url=server.base_url,
            default_model="gpt-image-2",
            tracer_provider=recorded.tracer_provider,
        ) as client,
        tracer.start_as_current_span("script"),
    ):
        client.generate("a cat")

    attempt, call, script = recorded.spans()
    assert ["POST", "generate_content gpt-image-2", "script"] == [
        span.name for span in (attempt, call, script)
    ]
    assert script.context is not None
    assert call.parent is not None
    assert script.context.span_id == call.parent.span_id


def test_a_global_provider_set_after_the_client_was_made_is_picked_up() -> None:
    """A client made before the application sets its providers records once they are set."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        import anyio, sys
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from linkai_images import AsyncImageClient, _telemetry
        from linkai_images.testing import FakeLinkAI

        _telemetry.RECHECK_INTERVAL = 0.0  # look again at every call, not once a second

        async def main():
            fake = FakeLinkAI()
            client = AsyncImageClient(fake.api_key, base_url=fake.base_url,
                                      transport=fake.transport(), default_model="gpt-image-2")
            await client.generate("before")
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            await client.generate("after")
            await client.aclose()
            print(len(exporter.get_finished_spans()))

        anyio.run(main)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert ("", "2") == (run.stderr, run.stdout.strip())
