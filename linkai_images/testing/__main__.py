"""``python -m linkai_images.testing serve``: the fake API on loopback, until stopped.

Benchmarks and manual tests run the fake in another process this way. The
first lines on stdout are the URLs and the key it accepts, as shell assignments
(``export $(python -m linkai_images.testing serve | head -3)`` in another shell
would not wait; copy them)::

    LINKAI_BASE_URL=http://127.0.0.1:8787/v1
    LINKAI_CDN_URL=http://127.0.0.1:8788
    LINKAI_API_KEY=sk-linkai-fake-key

The server runs until SIGINT (Ctrl+C) or SIGTERM.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._app import DEFAULT_API_KEY, DEFAULT_BANNED_WORDS, FakeLinkAI, Latency
from ._faults import Fault

__all__ = ["main"]

#: Requests kept for inspection by a long-running server (memory stays bounded).
CLI_RECORD_LIMIT = 1_000


def _latency(text: str) -> Latency:
    """``0.2`` (fixed seconds) or ``0.1:0.5`` (uniform between, seeded)."""
    low, sep, high = text.partition(":")
    try:
        if not sep:
            return float(text)
        a, b = float(low), float(high)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"latency {text!r} is not SECONDS or LOW:HIGH (e.g. 0.2 or 0.1:0.5)"
        ) from None

    def uniform(rng: random.Random) -> float:
        return rng.uniform(a, b)

    return uniform


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {text!r} is not a number from 0 to 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m linkai_images.testing",
        description="A fake of the LinkAI image API, for tests and benchmarks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve the fake API and CDN on loopback until SIGINT/SIGTERM"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    serve.add_argument("--cdn-port", type=int, default=0, help="CDN port (default: a free one)")
    serve.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help=f"accepted API key (default: {DEFAULT_API_KEY})"
    )
    serve.add_argument(
        "--latency",
        type=_latency,
        default=0.0,
        help="seconds before each answer: 0.2, or 0.1:0.5 for uniform (default: 0)",
    )
    serve.add_argument(
        "--503-rate",
        dest="rate_503",
        type=_rate,
        default=0.0,
        help="share of requests answered 503 (default: 0)",
    )
    serve.add_argument(
        "--drop-rate",
        type=_rate,
        default=0.0,
        help="share of requests whose connection is dropped unanswered (default: 0)",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed of the random faults and latency")
    serve.add_argument(
        "--b64",
        action="store_true",
        help="answer b64_json (inline PNG) unless a request asks for url",
    )
    serve.add_argument("--credits", type=int, default=None, help="successes before 406")
    serve.add_argument(
        "--rate-limit",
        metavar="RATE",
        help="requests the account may start, N/second, N/minute or N/hour (faster: 429)",
    )
    serve.add_argument(
        "--capacity",
        type=int,
        metavar="N",
        help="requests the account may have generating at once (more: 429)",
    )
    serve.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="CODE",
        help="accept this model code too, unchecked (repeatable)",
    )
    serve.add_argument(
        "--banned-word",
        action="append",
        default=None,
        metavar="WORD",
        help=f"moderation word, answered 409 (repeatable; default: {sorted(DEFAULT_BANNED_WORDS)})",
    )
    return parser


def _build_fake(args: argparse.Namespace) -> FakeLinkAI:
    """The fake the ``serve`` options describe."""
    try:
        limits = {"rate_limit": args.rate_limit, "capacity": args.capacity}
        FakeLinkAI(**limits)
    except ValueError as exc:
        raise SystemExit(f"linkai_images.testing: {exc}") from None
    fake = FakeLinkAI(
        **limits,
        api_key=args.api_key,
        credits=args.credits,
        banned_words=DEFAULT_BANNED_WORDS if args.banned_word is None else args.banned_word,
        extra_models=args.extra_model,
        latency=args.latency,
        seed=args.seed,
        default_response_format="b64_json" if args.b64 else "url",
        record_limit=CLI_RECORD_LIMIT,
    )
    if args.rate_503 + args.drop_rate > 1.0:
        raise SystemExit("--503-rate and --drop-rate add up to more than 1")
    fake.fail_randomly(args.rate_503, Fault.status(503))
    fake.fail_randomly(args.drop_rate, Fault.drop())
    return fake


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments, ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    fake = _build_fake(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with fake.serve(host=args.host, port=args.port, cdn_port=args.cdn_port) as server:
            print(f"LINKAI_BASE_URL={server.base_url}", flush=True)
            print(f"LINKAI_CDN_URL={server.cdn_url}", flush=True)
            print(f"LINKAI_API_KEY={fake.api_key}", flush=True)
            print("fake LinkAI API running; stop with Ctrl+C", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"stopped after {fake.request_count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
