"""What the fake's engine tells a front end to do, and the platform's error body.

The engine (``_app.py``) decides; the front ends (``_transport.py``,
``_server.py``) carry out a :class:`Reply`. Every error the platform answers
has one JSON shape, built by :func:`error_body`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

import attrs

__all__ = [
    "IN_PROCESS_BASE_URL",
    "IN_PROCESS_CDN_URL",
    "JSON_HEADER",
    "Engine",
    "Reply",
    "error_body",
    "error_reply",
]

#: The API base URL of the in-process transport.
IN_PROCESS_BASE_URL = "http://linkai.fake/v1"
#: The CDN origin of the in-process transport.
IN_PROCESS_CDN_URL = "http://cdn.linkai.fake"

#: The content type of every JSON answer.
JSON_HEADER = ("content-type", "application/json")

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "insufficient_quota",
    409: "content_policy_violation",
    429: "rate_limit_error",
}


@attrs.frozen
class Reply:
    """What a front end does with one request (internal to the fake).

    ``respond=False`` means: wait ``delay`` seconds, then close the connection
    without an answer. ``head=True`` means: send ``len(body)`` as the length,
    but not the body.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delay: float = 0.0
    respond: bool = True
    head: bool = False


def _error_type(status_code: int) -> str:
    default = "server_error" if status_code >= 500 else "invalid_request_error"
    return _ERROR_TYPES.get(status_code, default)


def _json_body(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(status_code: int, message: str) -> bytes:
    """The platform's error JSON: ``{"error": {"message": ..., "type": ...}}``."""
    return _json_body({"error": {"message": message, "type": _error_type(status_code)}})


def error_reply(status: int, message: str, request_id: str) -> Reply:
    """The platform's error answer to an API request, its ``X-Request-Id`` included."""
    return Reply(status, (JSON_HEADER, ("x-request-id", request_id)), error_body(status, message))


class Engine(Protocol):
    """What a front end needs of the engine (``FakeLinkAI`` has it).

    Declared here, below both, so that the engine can build its front ends
    (``FakeLinkAI.serve()``, ``.transport()``) without them importing it back.
    """

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, *, cdn_url: str
    ) -> Reply: ...

    def _handle_cdn(self, method: str, target: str, headers: Mapping[str, str]) -> Reply: ...

    def _finish(self) -> None: ...
