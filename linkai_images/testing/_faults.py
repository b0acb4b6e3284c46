"""Faults: the failures the fake serves instead of the platform's answer, and when.

A :class:`Fault` says what goes wrong (an error status, a dropped or hanging
connection, a broken body); :class:`FaultSchedule` says which request gets
one (queued per prompt or for any request, or drawn at a seeded random
rate); :func:`fault_reply` turns a fault into the :class:`Reply` a front end
carries out.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Mapping
from typing import Literal

import attrs

from ._reply import JSON_HEADER, Reply, error_body

__all__ = ["Fault", "FaultKind", "FaultSchedule", "fault_reply"]

FaultKind = Literal["status", "drop", "hang", "malformed_json", "html_error", "empty_error"]

_DEFAULT_MESSAGES: Mapping[int, str] = {
    429: "too many requests, slow down",
    500: "internal error",
    502: "bad gateway",
    503: "the upstream image service failed; try again",
    504: "the upstream image service timed out",
}

_HTML_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS: Mapping[int, str] = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

_MALFORMED_BODY = b'{"created": 1700000000, "data": [{"url": "http://cdn.linkai.fake/user/gen'


@attrs.frozen(kw_only=True)
class Fault:
    """A failure the fake serves instead of the platform's answer.

    Build one with the class methods (:meth:`status`, :meth:`drop`,
    :meth:`hang`, :meth:`malformed_json`, :meth:`html_error`,
    :meth:`empty_error`) and hand it to :meth:`FakeLinkAI.fail` or
    :meth:`FakeLinkAI.fail_randomly`. A faulted request spends no credits,
    except ``Fault.drop(generated=True)``, which generates and bills first.

    Attributes:
        kind: which failure.
        status_code: the HTTP status answered, for the kinds that answer.
        retry_after: the ``Retry-After`` header value (seconds, or a string
            sent as is, e.g. an HTTP date), or ``None`` for no header.
        seconds: how long a ``hang`` lasts before the connection is closed.
        message: the ``error.message`` of a ``status`` fault.
        generated: for a ``drop``: the image was generated and billed before
            the connection dropped, so the answer, not the charge, is lost.
    """

    kind: FaultKind
    status_code: int | None = None
    retry_after: float | str | None = None
    seconds: float = 0.0
    message: str | None = None
    generated: bool = False

    @classmethod
    def status(
        cls,
        status_code: int = 503,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
    ) -> Fault:
        """An error answer in the platform's JSON shape.

        Args:
            status_code: the HTTP status, e.g. 503, 429, 500.
            retry_after: a ``Retry-After`` header: seconds, or a string sent as is.
            message: ``error.message``; a stock message for the status when ``None``.

        Returns:
            The fault.
        """
        return cls(kind="status", status_code=status_code, retry_after=retry_after, message=message)

    @classmethod
    def drop(cls, *, generated: bool = False) -> Fault:
        """Read the request, then close the connection without answering.

        The request has reached the platform: a client cannot know whether
        it was generated. Over the in-process transport this raises
        ``httpx.RemoteProtocolError``, as a real server disconnect does.

        Args:
            generated: ``False`` (the default): dropped before generating,
                nothing is billed. ``True``: dropped after the answer was
                ready, so the image is generated and billed (it counts in
                ``images_generated``) but never reaches the client.

        Returns:
            The fault.
        """
        return cls(kind="drop", generated=generated)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Answer nothing for ``seconds``, then close the connection.

        Stopping the server does not wait for a hanging request.

        Args:
            seconds: how long to stay silent.

        Returns:
            The fault.
        """
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 with ``application/json`` whose body is cut off mid-document.

        Returns:
            The fault.
        """
        return cls(kind="malformed_json", status_code=200)

    @classmethod
    def html_error(cls, status_code: int = 502) -> Fault:
        """Answer an HTML error page, as a reverse proxy in front of the API does.

        Args:
            status_code: the HTTP status.

        Returns:
            The fault.
        """
        return cls(kind="html_error", status_code=status_code)

    @classmethod
    def empty_error(cls, status_code: int = 503) -> Fault:
        """Answer an error status with an empty body.

        Args:
            status_code: the HTTP status.

        Returns:
            The fault.
        """
        return cls(kind="empty_error", status_code=status_code)


class FaultSchedule:
    """Which fault, if any, each API request gets.

    Queued faults go first, a prompt's own queue before the any-prompt queue;
    then one is drawn at the random rates. Not thread-safe: the fake calls it
    under its lock.

    Args:
        seed: seeds the random draw; ``None`` seeds from the operating system.
    """

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._rates: dict[Fault, float] = {}
        self.clear()

    def clear(self) -> None:
        """Forget every queued fault and reseed the random draw; keep the rates."""
        self._queues: dict[str | None, collections.deque[Fault]] = {}
        self._rng = random.Random(f"{self._seed}:faults" if self._seed is not None else None)

    def queue(self, fault: Fault, *, prompt: str | None, times: int) -> None:
        """Queue ``fault`` for the next ``times`` attempts with ``prompt`` (any, when ``None``).

        Raises:
            ValueError: a negative ``times``.
        """
        if times < 0:
            raise ValueError(f"times must not be negative, not {times}")
        self._queues.setdefault(prompt, collections.deque()).extend([fault] * times)

    def set_rate(self, fault: Fault, rate: float) -> None:
        """Serve ``fault`` to a random share ``rate`` of requests, replacing its old rate.

        Raises:
            ValueError: a rate outside 0 to 1, or rates adding up to more than 1.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        self._rates.pop(fault, None)
        if sum(self._rates.values()) + rate > 1.0 + 1e-9:
            raise ValueError("the random fault rates add up to more than 1")
        if rate:
            self._rates[fault] = rate

    def next(self, prompt: str | None) -> Fault | None:
        """The fault for an API request with ``prompt``, taken off its queue; ``None`` for none."""
        for key in (prompt, None) if prompt is not None else (None,):
            queue = self._queues.get(key)
            if queue:
                fault = queue.popleft()
                if not queue:
                    del self._queues[key]
                return fault
        if self._rates:
            draw = self._rng.random()
            for fault, rate in self._rates.items():
                if draw < rate:
                    return fault
                draw -= rate
        return None


def fault_reply(fault: Fault, request_id: str, delay: float) -> Reply:
    """What a front end does for a request that gets ``fault``, after ``delay`` seconds."""
    code = fault.status_code or 503
    if fault.kind == "drop":
        return Reply(0, (), b"", delay=delay, respond=False)
    if fault.kind == "hang":
        return Reply(0, (), b"", delay=delay + max(0.0, fault.seconds), respond=False)
    if fault.kind == "malformed_json":
        return Reply(200, (JSON_HEADER, ("x-request-id", request_id)), _MALFORMED_BODY, delay=delay)
    if fault.kind == "html_error":
        page = _HTML_PAGE.format(code=code, reason=_REASONS.get(code, "Error"))
        return Reply(code, (("content-type", "text/html"),), page.encode(), delay=delay)
    if fault.kind == "empty_error":
        return Reply(code, (("x-request-id", request_id),), b"", delay=delay)
    message = fault.message or _DEFAULT_MESSAGES.get(code, f"injected error {code}")
    headers: tuple[tuple[str, str], ...] = (JSON_HEADER, ("x-request-id", request_id))
    if fault.retry_after is not None:
        headers += (("retry-after", _format_retry_after(fault.retry_after)),)
    return Reply(code, headers, error_body(code, message), delay=delay)


def _format_retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
