"""A Starlette app that serves image generation to many users through ONE shared client.

The client is opened once, in the app's lifespan, and every request uses it:
one connection pool for the whole process, and one bound on requests in
flight to the API (``max_concurrency``) however many users call at once;
extra requests queue inside the client instead of opening more connections.

Run it (``LINKAI_API_KEY`` set; ``LINKAI_BASE_URL`` for another server, such
as the fake: ``python -m linkai_images.testing serve``)::

    uvicorn starlette_app:app --app-dir examples

    curl -s localhost:8000/generate -d '{"prompt": "a fox", "model": "gpt-image-2"}'
    {"urls": ["https://cdn.link-ai.tech/..."], "model": "gpt-image-2", "attempts": 1, ...}

``GET /health`` reports the event loop's lag, measured by a ticker task: if
anything blocked the loop (a file read, a big base64 decode), it shows here.
``IMAGES_MAX_CONCURRENCY`` sets the bound on requests in flight (default 16).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from linkai_images import (
    APITimeoutError,
    AsyncImageClient,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ContentModerationError,
    InsufficientCreditsError,
    LinkAIError,
    ModelNotAvailableError,
    RateLimitError,
    RequestValidationError,
    ServiceUnavailableError,
)

logger = logging.getLogger(__name__)

#: Requests in flight to the API at once, for the whole process (all users).
MAX_CONCURRENCY = int(os.environ.get("IMAGES_MAX_CONCURRENCY", "16"))
#: Give up on one generation (retries included) after this many seconds.
DEADLINE = 300.0
#: The fields a caller may send; anything else is refused with 422.
FIELDS = ("prompt", "model", "size", "aspect_ratio", "quality", "images")
DEFAULT_MODEL = "gpt-image-2"
#: The largest request body accepted (data URIs of reference images make bodies big).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Bodies above this are parsed in a worker thread, not on the event loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
#: How often the loop-lag ticker wakes up.
TICK = 0.01


class LoopLag:
    """A ticker that measures how late the event loop wakes it: a stall detector."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the lag seen so far (e.g. after warming up)."""
        self.last = 0.0
        self.max = 0.0
        self.ticks = 0

    async def run(self) -> None:
        """Tick forever (until cancelled), recording how late each wake-up was."""
        while True:
            before = time.perf_counter()
            await anyio.sleep(TICK)
            self.last = max(0.0, time.perf_counter() - before - TICK)
            self.max = max(self.max, self.last)
            self.ticks += 1


def _error(status: int, message: str, kind: str, **headers: str) -> JSONResponse:
    """An error answer in the platform's shape: ``{"error": {"message", "type"}}``."""
    return JSONResponse({"error": {"message": message, "type": kind}}, status, headers=headers)


def _answer(exc: LinkAIError) -> JSONResponse:
    """The answer to our caller for an SDK error: their fault (422) or not (5xx)."""
    message = getattr(exc, "message", str(exc))
    if isinstance(exc, RequestValidationError):  # refused by the SDK before sending
        return _error(422, message, "invalid_request")
    if isinstance(exc, (BadRequestError, ModelNotAvailableError)):  # refused by the platform
        return _error(422, message, "invalid_request")
    if isinstance(exc, ContentModerationError):
        return _error(422, message, "content_policy_violation")
    if isinstance(exc, (AuthenticationError, InsufficientCreditsError)):
        # Our key or our account: tell the operator, not every caller.
        logger.error("image generation is failing: %s", exc)
        return _error(503, "image generation is unavailable right now", "service_unavailable")
    if isinstance(exc, (RateLimitError, ServiceUnavailableError, ClientClosedError)):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else {}
        return _error(503, message, "service_unavailable", **headers)
    if isinstance(exc, APITimeoutError):
        return _error(504, message, "upstream_timeout")
    # Any other error status, a broken answer, a lost connection: a bad gateway.
    return _error(502, str(exc), "upstream_error")


def _parse(body: object) -> tuple[dict[str, Any], str | None]:
    """The keyword arguments of ``generate`` from a JSON body, or what is wrong with it."""
    if not isinstance(body, Mapping):
        return {}, "the body must be a JSON object"
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return {}, f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(FIELDS)}"
    for name in FIELDS[:-1]:
        if name in body and not isinstance(body[name], str):
            return {}, f"{name!r} must be a string"
    images = body.get("images", [])
    if not isinstance(images, list):
        return {}, "'images' must be a list of URLs"
    for image in images:
        # Never pass on a local path a caller chose: the SDK would read that file on
        # this server and upload it. Only what the API takes itself: URLs, data URIs.
        if not isinstance(image, str) or not image.startswith(("http://", "https://", "data:")):
            return {}, f"each of 'images' must be an http(s) URL or a data URI, not {image!r:.80}"
    args = {name: body[name] for name in FIELDS if name in body}
    args.setdefault("prompt", "")
    return args, None


async def _read_body(request: Request) -> bytes | None:
    """The request body, or ``None`` when it is larger than ``MAX_BODY_BYTES``."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def generate(request: Request) -> JSONResponse:
    """``POST /generate``: JSON ``{prompt, model, size, aspect_ratio, quality, images}``."""
    raw = await _read_body(request)
    if raw is None:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes", "too_large")
    try:
        if len(raw) > PARSE_IN_THREAD_BYTES:
            body = await anyio.to_thread.run_sync(json.loads, raw)
        else:
            body = json.loads(raw)
    except ValueError:
        return _error(400, "the body is not valid JSON", "invalid_json")
    args, problem = _parse(body)
    if problem is not None:
        return _error(422, problem, "invalid_request")
    client: AsyncImageClient = request.app.state.client
    try:
        response = await client.generate(args.pop("prompt"), **args)
    except LinkAIError as exc:
        return _answer(exc)
    return JSONResponse(
        {
            "urls": response.urls,
            "model": response.model,
            "attempts": response.attempts,
            "elapsed": round(response.elapsed, 3),
            "request_id": response.request_id,
        }
    )


async def health(request: Request) -> JSONResponse:
    """``GET /health``: the event loop's lag (seconds), last and worst since start."""
    lag: LoopLag = request.app.state.loop_lag
    return JSONResponse(
        {"status": "ok", "loop_lag": lag.last, "loop_lag_max": lag.max, "ticks": lag.ticks}
    )


def create_app(*, max_concurrency: int = MAX_CONCURRENCY, **client_options: Any) -> Starlette:
    """The app; the client is made from the environment (and ``client_options``) at startup.

    Args:
        max_concurrency: requests in flight to the API at once, over all users.
        **client_options: more ``AsyncImageClient`` arguments (``api_key``,
            ``base_url``, ...); the environment fills in the rest.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        options = {"default_model": DEFAULT_MODEL, "deadline": DEADLINE, **client_options}
        async with (
            AsyncImageClient(max_concurrency=max_concurrency, **options) as client,
            anyio.create_task_group() as tasks,
        ):
            app.state.client = client
            app.state.loop_lag = LoopLag()
            tasks.start_soon(app.state.loop_lag.run)
            yield
            tasks.cancel_scope.cancel()

    return Starlette(
        routes=[
            Route("/generate", generate, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


app = create_app()
