"""What the fake records: each request it received, and each reference image as it read it.

:class:`RecordedRequest` and :class:`RecordedCdnRequest` are what
:attr:`FakeLinkAI.requests` and :attr:`FakeLinkAI.cdn_requests` return.
:func:`inspect_image` reads one entry of a request's ``images`` the way the
platform does, into a :class:`ReferenceImage` that says whether it is valid.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

import attrs

from ._faults import Fault

__all__ = ["RecordedCdnRequest", "RecordedRequest", "ReferenceImage", "inspect_image"]

_DATA_URI = re.compile(r"data:image/(png|jpeg|webp|gif);base64,", re.ASCII)


@attrs.frozen(kw_only=True)
class ReferenceImage:
    """One entry of a request's ``images`` as the fake understood it.

    Attributes:
        url: the http(s) URL, when the entry was one.
        mime_type: for a data URI, the type its decoded bytes really are.
        size: for a data URI, the decoded byte count.
        error: why the entry was rejected, or ``None`` when it is valid.
    """

    url: str | None = None
    mime_type: str | None = None
    size: int | None = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        """Whether the platform accepts this entry."""
        return self.error is None


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request to the API origin, as received.

    Attributes:
        request_id: the ``X-Request-Id`` answered.
        method: the HTTP method.
        path: the request target, query included.
        headers: the headers, names lower-cased (repeats joined with ``", "``).
        body: the parsed JSON body, or ``None`` when it was not JSON.
        prompt: ``body["prompt"]`` when it is a string.
        model: ``body["model"]`` when it is a string.
        images: each reference image, checked.
        status: the HTTP status answered; ``None`` when the connection was
            closed without an answer (``drop``, ``hang``).
        fault: the injected fault, or ``None`` when the platform's rules answered.
        received_at: ``time.time()`` on arrival.
    """

    request_id: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: object
    prompt: str | None
    model: str | None
    images: tuple[ReferenceImage, ...]
    status: int | None
    fault: Fault | None
    received_at: float


@attrs.frozen(kw_only=True)
class RecordedCdnRequest:
    """One request to the CDN origin.

    Attributes:
        method: the HTTP method.
        path: the request target.
        headers: the headers, names lower-cased.
        status: the HTTP status answered.
        received_at: ``time.time()`` on arrival.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    status: int
    received_at: float


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def inspect_image(item: object) -> ReferenceImage:
    """Check one ``images`` entry: an http(s) URL, or a true base64 image data URI."""
    if not isinstance(item, str):
        return ReferenceImage(error="is not a string")
    head = item[:8].lower()
    if head.startswith(("http://", "https://")):
        rest = item.split("//", 1)[1]
        host = rest.split("/", 1)[0].split("?", 1)[0]
        if not host or any(c.isspace() for c in item):
            return ReferenceImage(error="is not a valid http(s) URL")
        return ReferenceImage(url=item)
    if head.startswith("data:"):
        match = _DATA_URI.match(item)
        if match is None:
            return ReferenceImage(
                error="is a data URI but not data:image/<png|jpeg|webp|gif>;base64,..."
            )
        try:
            data = base64.b64decode(item[match.end() :], validate=True)
        except (binascii.Error, ValueError):
            return ReferenceImage(error="is a data URI whose base64 payload is invalid")
        declared = f"image/{match[1]}"
        sniffed = _sniff(data)
        if sniffed != declared:
            return ReferenceImage(
                error=f"says {declared} but its bytes are {sniffed or 'not an image'}"
            )
        return ReferenceImage(mime_type=sniffed, size=len(data))
    return ReferenceImage(error="is neither an http(s) URL nor a data:image/... base64 URI")
