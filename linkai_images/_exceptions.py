"""Every error the SDK raises, in one place.

The tree::

    LinkAIError
    ├── RequestValidationError (also ValueError)   bad arguments, found before sending
    ├── ClientClosedError (also RuntimeError)      the client was used after aclose()
    ├── APIResponseValidationError                 a 200 whose body is not what the API promises
    ├── APIConnectionError                         no usable HTTP response
    │   └── APITimeoutError
    ├── APIStatusError                             the API answered with an error status
    │   ├── BadRequestError              400
    │   ├── AuthenticationError          401
    │   ├── ModelNotAvailableError       402
    │   ├── InsufficientCreditsError     406
    │   ├── ContentModerationError       409
    │   ├── RateLimitError               429
    │   ├── InternalServerError          other 5xx
    │   │   └── ServiceUnavailableError  503
    ├── DownloadError                                fetching a generated image failed
    ├── BatchAbortedError                            not sent: the batch stopped on an account error
    ├── CostLimitError                               not sent: it would pass the batch's max_cost
    ├── CheckpointError                              a checkpoint file is in use or unusable
    ├── LimiterError                                 the shared rate limiter (Redis) is unusable
    ├── UncertainRequestError                        not sent again: an earlier run may have paid
    └── BatchError                                   a batch had failures; carries every result

Third-party exceptions (httpx, aiohttp, json, a ``RecursionError`` from JSON
nested too deep) never escape: they are mapped at one boundary
(``_http/endpoint.py``) and chained with ``raise ... from exc``. Text the server
sent reaches these errors only through that boundary, which masks the API key
in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchAbortedError",
    "BatchError",
    "CheckpointError",
    "CostLimitError",
    "ClientClosedError",
    "ContentModerationError",
    "DownloadError",
    "InsufficientCreditsError",
    "InternalServerError",
    "LimiterError",
    "LinkAIError",
    "ModelNotAvailableError",
    "RateLimitError",
    "RequestValidationError",
    "ServiceUnavailableError",
    "UncertainRequestError",
    "rate_limit_headers",
    "status_error_class",
]

#: Header name prefixes that carry rate-limit information: the common
#: ``x-ratelimit-*``, the IETF draft's ``ratelimit*`` and ``retry-after``
#: (with the ``retry-after-ms`` variant some APIs send).
RATE_LIMIT_HEADER_PREFIXES = (b"x-ratelimit-", b"ratelimit", b"retry-after")


def rate_limit_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The rate-limit headers among raw ``(name, value)`` pairs (``httpx.Headers.raw``).

    Names come out in lower case, values as sent (Latin-1, as HTTP has it).
    """
    found: dict[str, str] = {}
    for name, value in raw:
        lowered = name.lower()
        if lowered.startswith(RATE_LIMIT_HEADER_PREFIXES):
            found[lowered.decode("latin-1")] = value.decode("latin-1")
    return found


class LinkAIError(Exception):
    """Base class of every error raised by ``linkai_images``."""


class RequestValidationError(LinkAIError, ValueError):
    """An argument was rejected before any request was sent.

    Raised for an empty prompt, a value outside a known model's table, too
    many reference images, or a reference image that is unreadable or not an
    image. The message names the offending value and what is allowed.
    """


class ClientClosedError(LinkAIError, RuntimeError):
    """The client was used after ``aclose()`` / ``close()``."""


class APIResponseValidationError(LinkAIError):
    """The API answered 200 but the body is not a valid image response.

    Attributes:
        response: the ``httpx.Response`` received.
        body: the decoded body, or the raw text when it was not JSON.
        attempts: attempts made for the call, retries included.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response | None = None,
        body: object = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.body = body
        self.attempts = attempts


class APIConnectionError(LinkAIError):
    """No usable HTTP response: the connection failed, dropped, or timed out.

    Attributes:
        request: the ``httpx.Request`` that was being sent, when known.
        request_sent: ``True`` when the request may have reached the platform
            (so it may be generated and billed even though no answer came).
        attempts: attempts made for the call, retries included.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        request_sent: bool = True,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.request_sent = request_sent
        self.attempts = attempts


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, write, read, pool or the call deadline)."""


class APIStatusError(LinkAIError):
    """The API answered with an error status.

    Attributes:
        status_code: the HTTP status.
        message: the server's ``error.message``, or a description of the body
            when it had none (an HTML page from a proxy, an empty body).
        type: the server's ``error.type``, or ``None``.
        body: the decoded JSON body, or the raw text when it was not JSON.
        response: the ``httpx.Response``.
        attempts: attempts made for the call, retries included.
        retry_after: seconds from a ``Retry-After`` header, when present.
        rate_limit_headers: the answer's rate-limit headers, names in lower
            case (``x-ratelimit-*``, ``ratelimit*``, ``retry-after*``), as
            sent; empty when there were none. The SDK acts only on
            ``Retry-After``; the rest are there for you to read.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: object = None,
        type: str | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.type = type
        self.attempts = attempts
        self.retry_after = retry_after
        self.rate_limit_headers = rate_limit_headers(response.headers.raw)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class BadRequestError(APIStatusError):
    """400: bad parameters (empty prompt, unreachable reference image, ...)."""


class AuthenticationError(APIStatusError):
    """401: the API key was rejected."""


class ModelNotAvailableError(APIStatusError):
    """402: the model does not exist, or the account may not use it."""


class InsufficientCreditsError(APIStatusError):
    """406: the account has not enough credits."""


class ContentModerationError(APIStatusError):
    """409: content moderation rejected the prompt or a reference image."""


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """A 5xx other than 503."""


class ServiceUnavailableError(InternalServerError):
    """503: the upstream call failed (transient)."""


class DownloadError(LinkAIError):
    """Fetching or saving a generated image failed.

    Attributes:
        url: the image URL.
        status_code: the CDN's HTTP status, when it answered.
    """

    def __init__(self, message: str, *, url: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status_code = status_code


class BatchAbortedError(LinkAIError):
    """A batch request that was never sent, because the batch stopped launching.

    An account-level failure (401: bad key, 406: no credits) makes every
    further request fail the same way, so a batch stops starting new ones and
    reports each request it did not send with this error.

    Attributes:
        cause: the account-level error that stopped the batch.
    """

    def __init__(self, cause: APIStatusError) -> None:
        self.cause = cause
        super().__init__(
            f"not sent: the batch stopped starting requests after "
            f"{type(cause).__name__} ({cause.status_code}): {cause.message}"
        )


class CostLimitError(LinkAIError):
    """A batch request that was never sent, because it would pass the batch's ``max_cost``.

    Once the estimated cost of the requests sent, plus this one, would pass
    ``max_cost``, the batch starts no new request; each request it did not
    send ends with this error. Run the batch again with a higher cap (and the
    same checkpoint) to send them.

    Attributes:
        max_cost: the cap.
        spent: the estimated cost of the requests the batch had sent.
        price: the estimated cost of the first request refused.
    """

    def __init__(self, *, max_cost: float, spent: float, price: float) -> None:
        self.max_cost = max_cost
        self.spent = spent
        self.price = price
        super().__init__(
            f"not sent: the batch's estimated cost would pass max_cost={max_cost:g} "
            f"({spent:g} sent, {price:g} for the next request)"
        )


class CheckpointError(LinkAIError):
    """A batch's checkpoint file cannot be used (another running batch holds it)."""


class LimiterError(LinkAIError):
    """The shared rate limiter (``limiter_url``) cannot be used: Redis is unreachable or failed.

    Nothing was sent. The client does not fall back to pacing each process
    on its own unless it was made with ``limiter_fallback=True``.
    """


class UncertainRequestError(LinkAIError):
    """Not sent: an earlier run sent this request and got no result, so it may be paid for.

    A batch with a checkpoint journals each request before it is sent and
    its outcome after. When a run finds a request that an earlier run sent
    but whose outcome is missing (that run was killed or cancelled while it
    was in flight) or was an answer lost after sending (a read timeout, a
    dropped connection, a 200 with a broken body), the platform may have
    generated and billed it. Rather than pay twice behind your back, the
    batch does not send it again and reports it with this error. Pass
    ``resend_uncertain=True`` (``--resend-uncertain`` on the command line)
    to send such requests anyway.

    Attributes:
        previous_error: what the earlier attempt ended with
            (``"APITimeoutError: ..."``), or ``None`` when that run stopped
            (killed, crashed, cancelled) before its outcome was recorded.
    """

    def __init__(self, previous_error: str | None = None) -> None:
        self.previous_error = previous_error
        what = (
            "stopped before its outcome was recorded"
            if previous_error is None
            else f"got no usable answer ({previous_error})"
        )
        super().__init__(
            f"not sent again: an earlier run sent this request and {what}, so it may have "
            "been generated and billed; pass resend_uncertain=True to send it anyway"
        )


class BatchError(LinkAIError):
    """Some requests of a batch failed; raised only after all of them settled.

    Attributes:
        results: one entry per input request, aligned with the inputs: an
            ``ImageResponse`` or the exception that request ended with.
            Nothing paid for is lost: successes are all here.
    """

    def __init__(self, results: Sequence[Any]) -> None:
        self.results = results if isinstance(results, list) else list(results)
        failures = [r for r in self.results if isinstance(r, BaseException)]
        self.errors: list[BaseException] = failures
        first = f"; first: {type(failures[0]).__name__}: {failures[0]}" if failures else ""
        super().__init__(
            f"{len(failures)} of {len(self.results)} requests failed "
            f"({len(self.results) - len(failures)} succeeded; see .results){first}"
        )

    @property
    def responses(self) -> list[Any]:
        """The successful results, in input order."""
        return [r for r in self.results if not isinstance(r, BaseException)]


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: ModelNotAvailableError,
    406: InsufficientCreditsError,
    409: ContentModerationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    try:
        return _STATUS_CLASSES[status_code]
    except KeyError:
        return InternalServerError if status_code >= 500 else APIStatusError
